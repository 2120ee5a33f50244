/* xlsx_hooks.c: calls of libxlsxwriter's that this program answers itself.
 *
 * The dynamic linker binds libxlsxwriter's calls to gmtime(), lxw_tmpfile()
 * (its own), zipOpen() and zipOpenNewFileInZip4_64() (minizip's) to the
 * definitions here, ahead of the libraries' own, which each reaches through
 * dlsym(RTLD_NEXT) when it has nothing to change:
 *
 *   - gmtime() is made safe for two threads packing at once;
 *   - a workbook small enough to hold in memory (exw_xlsx_open with no
 *     path) is built in buffers of the process's own, its temporary files
 *     and its zip alike, on the thread that works on it (exw_xlsx_memory_use).
 *     On disk, each temporary file is an inode made and freed, and through
 *     stdio the zip's stream is flushed at every seek (44 system calls for a
 *     workbook of ten rows): either cost more than the workbook. In memory
 *     it costs none;
 *   - the parts every workbook has, whose size does not grow with its rows,
 *     are compressed at zlib's fastest level.
 *
 * Thread: everything here works for the calling thread; a workbook is worked
 * on by one thread at a time. */
#define _GNU_SOURCE /* fopencookie(), RTLD_NEXT */
#include "exw/xlsx_hooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xlsxwriter.h>
#include <xlsxwriter/third_party/zip.h>

#include "exw/xlsx.h"

/* libxlsxwriter dates a workbook's properties (docProps/core.xml) with
 * gmtime(), whose result glibc keeps in one static struct for the whole
 * process: two job threads packing at once would race on it. POSIX lets
 * gmtime() return storage of the calling thread's own, so this one does that
 * instead of serializing every pack behind a lock. Nothing else in the tree calls
 * gmtime(): log.c uses gmtime_r(). */
struct tm *gmtime(const time_t *t)
{
    static _Thread_local struct tm tm;

    return gmtime_r(t, &tm);
}

/* ---- Temporary files ----
 *
 * libxlsxwriter makes each of its temporary files (a sheet's rows in
 * constant-memory mode, then every part of the workbook as it packs it)
 * through lxw_tmpfile(). A workbook in memory gets a stdio stream over a
 * growing buffer (fopencookie) instead: no system call at all. The library
 * only writes, flushes, seeks, reads and closes its temporary files (it never
 * asks for their descriptor). */

/* The workbook in memory this thread works on, or NULL when its files go to
 * disk. */
static _Thread_local struct exw_xlsx_memory *memory;
static FILE *(*library_tmpfile)(char *tmpdir);
static pthread_once_t library_tmpfile_once = PTHREAD_ONCE_INIT;

static void find_library_tmpfile(void)
{
    void *fn = dlsym(RTLD_NEXT, "lxw_tmpfile");

    memcpy(&library_tmpfile, &fn, sizeof(fn)); /* POSIX: a function pointer fits */
}

void exw_xlsx_memory_use(struct exw_xlsx_memory *m) { memory = m; }

/* One temporary file in memory; the stream owns it. It is on its workbook's
 * list of open parts until closed, so that the parts a failed
 * workbook_close() leaves open can be closed (exw_xlsx_memory_free). */
struct exw_mem_part {
    char *data;
    size_t len, cap; /* bytes written; allocated */
    size_t pos;      /* the stream's offset */
    FILE *fp;
    struct exw_mem_part **head, *next, *prev;
};

static ssize_t part_write(void *cookie, const char *buf, size_t n)
{
    struct exw_mem_part *m = cookie;

    if (n > SIZE_MAX / 2 - m->pos) {
        errno = EFBIG;
        return -1;
    }
    if (m->pos + n > m->cap) {
        size_t cap = m->cap ? m->cap : 8192;
        char *data;

        while (cap < m->pos + n)
            cap *= 2;
        data = realloc(m->data, cap);
        if (data == NULL) {
            errno = ENOMEM;
            return -1;
        }
        m->data = data;
        m->cap = cap;
    }
    if (m->pos > m->len) /* a seek past the end leaves a hole of zeros */
        memset(m->data + m->len, 0, m->pos - m->len);
    memcpy(m->data + m->pos, buf, n);
    m->pos += n;
    if (m->pos > m->len)
        m->len = m->pos;
    return (ssize_t)n;
}

static ssize_t part_read(void *cookie, char *buf, size_t n)
{
    struct exw_mem_part *m = cookie;
    size_t left = m->pos < m->len ? m->len - m->pos : 0;

    if (n > left)
        n = left;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static int part_seek(void *cookie, off64_t *off, int whence)
{
    struct exw_mem_part *m = cookie;
    off64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (off64_t)m->pos : (off64_t)m->len;

    if (*off < -base) {
        errno = EINVAL;
        return -1;
    }
    m->pos = (size_t)(base + *off);
    *off = (off64_t)m->pos;
    return 0;
}

static int part_close(void *cookie)
{
    struct exw_mem_part *m = cookie;

    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        *m->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    free(m->data);
    free(m);
    return 0;
}

FILE *lxw_tmpfile(char *tmpdir)
{
    if (memory != NULL) {
        static const cookie_io_functions_t io = {
            .read = part_read, .write = part_write, .seek = part_seek, .close = part_close};
        struct exw_mem_part *m = calloc(1, sizeof(*m));
        FILE *f = m != NULL ? fopencookie(m, "w+", io) : NULL;

        if (f == NULL) {
            free(m);
            return NULL;
        }
        m->fp = f;
        m->head = &memory->parts;
        m->next = memory->parts;
        if (m->next != NULL)
            m->next->prev = m;
        memory->parts = m;
        return f;
    }
    pthread_once(&library_tmpfile_once, find_library_tmpfile);
    return library_tmpfile != NULL ? library_tmpfile(tmpdir) : tmpfile();
}

void exw_xlsx_memory_free(struct exw_xlsx_memory *m)
{
    while (m->parts != NULL)
        fclose(m->parts->fp); /* part_close takes it off the list */
    free(m->zip);
    m->zip = NULL;
    m->zip_len = 0;
}

/* ---- The zip ----
 *
 * libxlsxwriter opens its output with zipOpen(), by name, which gives minizip
 * a stdio stream on it. minizip writes each part's header and data, then
 * seeks back to fill in the header's sizes and on again, and every seek
 * flushes the stream: two system calls a part and more. For a workbook in
 * memory, zipOpen() opens the zip with functions of ours instead (minizip's
 * hooks for its input and output): the bytes gather in a buffer as in a
 * temporary part, which the workbook takes when minizip closes it.
 *
 * zlib's default level spends most of its time on the parts every workbook
 * has (the theme, the styles, the properties: about 12 KB): at its fastest
 * level they take 280 bytes more, and a ten-row job a tenth less CPU. A
 * sheet's rows keep the library's level, which packs them a fifth smaller. */

/* The zip being written; minizip's stream. */
struct zip_out {
    struct exw_mem_part buf; /* only its bytes and offset are used */
    struct exw_xlsx_memory *to;
    int failed; /* errno of a write or seek that failed, else 0 */
};

typedef zipFile (*zip_open_fn)(const char *path, int append);
typedef int (*zip_open_part_fn)(zipFile file, const char *name, const zip_fileinfo *info,
                                const void *extra_local, uInt extra_local_len,
                                const void *extra_global, uInt extra_global_len,
                                const char *comment, int method, int level, int raw,
                                int window_bits, int mem_level, int strategy, const char *password,
                                uLong crc_for_crypting, uLong version_made_by, uLong flag_base,
                                int zip64);
typedef zipFile (*zip_open2_64_fn)(const void *path, int append, zipcharpc *comment,
                                   zlib_filefunc64_def *io);
static zip_open_fn library_zip_open;
static zip_open_part_fn library_zip_open_part;
static zip_open2_64_fn library_zip_open2_64;
static pthread_once_t library_zip_once = PTHREAD_ONCE_INIT;

static void find_library_zip(void)
{
    void *open = dlsym(RTLD_NEXT, "zipOpen");
    void *open_part = dlsym(RTLD_NEXT, "zipOpenNewFileInZip4_64");
    void *open2 = dlsym(RTLD_DEFAULT, "zipOpen2_64");

    memcpy(&library_zip_open, &open, sizeof(open));
    memcpy(&library_zip_open_part, &open_part, sizeof(open_part));
    memcpy(&library_zip_open2_64, &open2, sizeof(open2));
}

static voidpf ZCALLBACK zip_open(voidpf opaque, const void *path, int mode)
{
    struct zip_out *z = calloc(1, sizeof(*z));

    (void)opaque;
    (void)path; /* the workbook's name, to no file */
    (void)mode; /* only ever to create: zipOpen() below */
    if (z != NULL)
        z->to = memory;
    return z;
}

static uLong ZCALLBACK zip_read(voidpf opaque, voidpf stream, void *buf, uLong n)
{
    struct zip_out *z = stream;

    (void)opaque;
    return (uLong)part_read(&z->buf, buf, n);
}

static uLong ZCALLBACK zip_write(voidpf opaque, voidpf stream, const void *buf, uLong n)
{
    struct zip_out *z = stream;

    (void)opaque;
    if (part_write(&z->buf, buf, n) < 0) {
        z->failed = errno;
        return 0;
    }
    return n;
}

static ZPOS64_T ZCALLBACK zip_tell(voidpf opaque, voidpf stream)
{
    struct zip_out *z = stream;

    (void)opaque;
    return z->buf.pos;
}

static long ZCALLBACK zip_seek(voidpf opaque, voidpf stream, ZPOS64_T offset, int origin)
{
    struct zip_out *z = stream;
    off64_t off = (off64_t)offset;
    int whence = origin == ZLIB_FILEFUNC_SEEK_CUR   ? SEEK_CUR
                 : origin == ZLIB_FILEFUNC_SEEK_END ? SEEK_END
                                                    : SEEK_SET;

    (void)opaque;
    if (offset > INT64_MAX)
        z->failed = errno = EINVAL;
    else if (part_seek(&z->buf, &off, whence) != 0)
        z->failed = errno;
    return z->failed != 0 ? -1 : 0;
}

/* Hands the zip to its workbook. */
static int ZCALLBACK zip_close(voidpf opaque, voidpf stream)
{
    struct zip_out *z = stream;
    int err = z->failed;

    (void)opaque;
    if (err == 0) {
        free(z->to->zip);
        z->to->zip = z->buf.data;
        z->to->zip_len = z->buf.len;
    } else {
        free(z->buf.data);
    }
    free(z);
    errno = err;
    return err != 0 ? -1 : 0;
}

static int ZCALLBACK zip_error(voidpf opaque, voidpf stream)
{
    struct zip_out *z = stream;

    (void)opaque;
    return z->failed;
}

zipFile zipOpen(const char *path, int append)
{
    zlib_filefunc64_def io = {.zopen64_file = zip_open,
                              .zread_file = zip_read,
                              .zwrite_file = zip_write,
                              .ztell64_file = zip_tell,
                              .zseek64_file = zip_seek,
                              .zclose_file = zip_close,
                              .zerror_file = zip_error};

    pthread_once(&library_zip_once, find_library_zip);
    if (memory != NULL) {
        if (append == APPEND_STATUS_CREATE && library_zip_open2_64 != NULL)
            return library_zip_open2_64(path, append, NULL, &io);
        errno = ENOSYS;
        return NULL;
    }
    if (library_zip_open == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    return library_zip_open(path, append);
}

int zipOpenNewFileInZip4_64(zipFile file, const char *name, const zip_fileinfo *info,
                            const void *extra_local, uInt extra_local_len, const void *extra_global,
                            uInt extra_global_len, const char *comment, int method, int level,
                            int raw, int window_bits, int mem_level, int strategy,
                            const char *password, uLong crc_for_crypting, uLong version_made_by,
                            uLong flag_base, int zip64)
{
    pthread_once(&library_zip_once, find_library_zip);
    if (library_zip_open_part == NULL)
        return ZIP_INTERNALERROR;
    if (method == Z_DEFLATED && level != 0 && name != NULL &&
        strncmp(name, "xl/worksheets/", 14) != 0)
        level = Z_BEST_SPEED;
    return library_zip_open_part(file, name, info, extra_local, extra_local_len, extra_global,
                                 extra_global_len, comment, method, level, raw, window_bits,
                                 mem_level, strategy, password, crc_for_crypting, version_made_by,
                                 flag_base, zip64);
}
