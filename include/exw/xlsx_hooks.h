/* xlsx_hooks.h: calls of libxlsxwriter's answered here (for xlsx.c).
 *
 * Among them, those that build a small workbook in the process's memory:
 * libxlsxwriter's temporary files, and the zip it packs, go to buffers of the
 * process's own while the thread that works on it says so. See xlsx_hooks.c. */
#ifndef EXW_XLSX_HOOKS_H
#define EXW_XLSX_HOOKS_H

#include <stddef.h>

/* One temporary file in memory. */
struct exw_mem_part;

/* A workbook built in memory. Owned by its workbook (xlsx.c). */
struct exw_xlsx_memory {
    struct exw_mem_part *parts; /* temporary files still open */
    char *zip;                  /* the packed workbook, once its zip is closed; malloc'd */
    size_t zip_len;
};

/* From now on, the temporary files and zip that libxlsxwriter opens on this
 * thread are in @m's memory; NULL gives them back to the library (on disk).
 * Thread: any, for itself. */
void exw_xlsx_memory_use(struct exw_xlsx_memory *m);

/* Closes and frees every part still open (those a failed workbook_close()
 * leaves open) and the zip. */
void exw_xlsx_memory_free(struct exw_xlsx_memory *m);

#endif
