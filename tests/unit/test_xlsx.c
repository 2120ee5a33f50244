/* test_xlsx.c: the workbook writer. Workbooks are written under $EXW_TEST_TMPDIR
 * and read back with openpyxl (Debian's python3-openpyxl), which prints every
 * cell for the test to compare. */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exw/json.h"
#include "exw/xlsx.h"

#define PYTHON "/usr/bin/python3"

/* Prints each sheet (name, frozen cell, autofilter, custom widths) and each
 * non-empty cell (coordinate, openpyxl type, value, number format, bold) of
 * the workbook argv[1]. openpyxl does not decode Excel's _xHHHH_ escapes in
 * inline strings, so text is decoded here as Excel reads it. Then, per sheet
 * XML, how many formulas and inline strings it holds. With "levels" after
 * the path, only each part's name and the compression level its zip entry
 * records (deflate's option bits: "fastest", "normal", ...). */
static const char reader_py[] =
    "import re, sys, zipfile, openpyxl\n"
    "if sys.argv[2:] == ['levels']:\n"
    "    names = {0: 'normal', 2: 'maximum', 4: 'fast', 6: 'fastest'}\n"
    "    for i in zipfile.ZipFile(sys.argv[1]).infolist():\n"
    "        print(i.filename, names[i.flag_bits & 6] if i.compress_type == 8 else 'stored')\n"
    "    sys.exit(0)\n"
    "def excel_text(s):\n"
    "    return re.sub(r'_x([0-9A-Fa-f]{4})_', lambda m: chr(int(m.group(1), 16)), s)\n"
    "wb = openpyxl.load_workbook(sys.argv[1])\n"
    "for ws in wb.worksheets:\n"
    "    print('sheet %r freeze=%s filter=%s' % (ws.title, ws.freeze_panes, ws.auto_filter.ref))\n"
    "    for key, dim in sorted(ws.column_dimensions.items()):\n"
    "        if dim.customWidth:\n"
    "            print('  width %s %.2f' % (key, dim.width))\n"
    "    for row in ws.iter_rows():\n"
    "        for c in row:\n"
    "            if c.value is None:\n"
    "                continue\n"
    "            v = excel_text(c.value) if isinstance(c.value, str) else c.value\n"
    "            print('  %s %s %r %s%s' % (c.coordinate, c.data_type, v, c.number_format,\n"
    "                                      ' bold' if c.font.b else ''))\n"
    "z = zipfile.ZipFile(sys.argv[1])\n"
    "for n in sorted(z.namelist()):\n"
    "    if n.startswith('xl/worksheets/sheet'):\n"
    "        x = z.read(n)\n"
    "        print('%s formulas=%d inline=%d' % (n, x.count(b'<f>') + x.count(b'<f '),\n"
    "                                          x.count(b't=\"inlineStr\"')))\n";

static char tmpdir[512];
static char script[600];

static int setup(void **state)
{
    FILE *f;

    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_xlsx.XXXXXX", scratch_dir());
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(script, sizeof(script), "%s/read.py", tmpdir);
    f = fopen(script, "w");
    if (f == NULL)
        return -1;
    fputs(reader_py, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unlink(script);
    rmdir(tmpdir); /* left behind, with its workbooks, when a test failed */
    return 0;
}

static void path_for(char *out, size_t outsz, const char *name)
{
    snprintf(out, outsz, "%s/%s", tmpdir, name);
}

/* The reader's output for the workbook at @path, given @arg; the caller frees
 * it. */
static char *read_back(const char *path, const char *arg)
{
    char cmd[1400], *out = NULL;
    size_t len = 0, cap = 0, n;
    FILE *p;

    snprintf(cmd, sizeof(cmd), PYTHON " '%s' '%s' %s 2>&1", script, path, arg);
    p = popen(cmd, "r");
    assert_non_null(p);
    do {
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 8192;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        n = fread(out + len, 1, cap - len - 1, p);
        len += n;
    } while (n > 0);
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

/* Checks the file looks like a zip, then its contents through openpyxl. */
static void expect_workbook(const char *path, const char *want)
{
    char magic[2] = {0};
    char *got;
    FILE *f;

    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(magic, 1, 2, f), 2);
    fclose(f);
    assert_memory_equal(magic, "PK", 2);
    got = read_back(path, "");
    if (strcmp(got, want) != 0)
        fprintf(stderr, "--- got ---\n%s--- want ---\n%s---\n", got, want);
    assert_true(strcmp(got, want) == 0);
    free(got);
}

/* Every part of the workbook at @path is compressed at zlib's fastest level
 * but its sheets (xlsx_hooks.c), and there are @nsheets of them. */
static void expect_levels(const char *path, int nsheets)
{
    char *got = read_back(path, "levels"), *line, *save = NULL;
    int sheets = 0, parts = 0;

    for (line = strtok_r(got, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        parts++;
        if (strncmp(line, "xl/worksheets/sheet", 19) == 0) {
            sheets++;
            assert_non_null(strstr(line, ".xml normal"));
        } else if (strstr(line, " fastest") == NULL) {
            fail_msg("not at the fastest level: %s", line);
        }
    }
    assert_int_equal(sheets, nsheets);
    assert_true(parts >= nsheets + 8); /* properties, theme, styles, ... */
    free(got);
}

static struct exw_cell text(const char *s)
{
    struct exw_cell c = {.kind = EXW_CELL_STRING, .str = s};

    return c;
}

static struct exw_cell number(double v)
{
    struct exw_cell c = {.kind = EXW_CELL_NUMBER, .num = v};

    return c;
}

static struct exw_cell boolean(int v)
{
    struct exw_cell c = {.kind = EXW_CELL_BOOLEAN, .num = v ? 1 : 0};

    return c;
}

static struct exw_cell datetime(int y, int mo, int d, int h, int mi, double s)
{
    struct exw_cell c = {.kind = EXW_CELL_DATETIME, .dt = {y, mo, d, h, mi, s}};

    return c;
}

static struct exw_cell empty(void)
{
    struct exw_cell c = {.kind = EXW_CELL_EMPTY};

    return c;
}

/* ---- Sheet names ---- */

static void expect_name(const char *base, unsigned n, const char *want)
{
    char out[128];

    memset(out, 'x', sizeof(out));
    exw_xlsx_sheet_name(base, n, out, sizeof(out));
    assert_string_equal(out, want);
    assert_true(exw_utf8_valid(out, strlen(out), NULL));
    assert_true(exw_utf8_len(out, strlen(out)) <= 31);
}

#define E_ACUTE "\xC3\xA9"
#define NIHON "\xE6\x97\xA5"
#define GRIN "\xF0\x9F\x98\x80"
#define NIHON14 NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON

static void expect_long_name(void)
{
    char out[128];

    exw_xlsx_sheet_name("Thirty-two characters, one extra", 1, out, sizeof(out));
    assert_string_equal(out, "Thirty-two characters, one extra");
    /* Cut to fit the buffer, by whole characters. */
    exw_xlsx_sheet_name(E_ACUTE E_ACUTE E_ACUTE, 1, out, 6);
    assert_string_equal(out, E_ACUTE E_ACUTE);
    exw_xlsx_sheet_name("abc", 12, out, 6);
    assert_string_equal(out, " (12)");
}

static void test_sheet_name(void **state)
{
    (void)state;
    expect_name("Data", 1, "Data");
    expect_name("Data", 0, "Data");
    expect_name("Data", 2, "Data (2)");
    expect_name("Data", 10, "Data (10)");
    expect_name("A", 4294967295u, "A (4294967295)");

    /* 31 characters: kept whole for sheet 1, shortened for the others. */
    expect_name("Quarterly contract export 2026A", 1, "Quarterly contract export 2026A");
    expect_name("Quarterly contract export 2026A", 2, "Quarterly contract export 2 (2)");
    expect_name("Quarterly contract export 2026A", 10, "Quarterly contract export  (10)");
    expect_name("Quarterly contract export 2026A", 4294967295u, "Quarterly contract (4294967295)");
    expect_name("Twenty-seven characters lon", 2, "Twenty-seven characters lon (2)");
    expect_name("Twenty-seven characters long", 2, "Twenty-seven characters lon (2)");
    expect_name("", 2, " (2)");
    /* Sheet 1 is the base as given, even when too long for Excel (the caller checks). */
    expect_long_name();

    /* Characters, not bytes, and never half a character. */
    expect_name(E_ACUTE E_ACUTE E_ACUTE, 2, E_ACUTE E_ACUTE E_ACUTE " (2)");
    expect_name("R" E_ACUTE "sum" E_ACUTE " des contrats sign" E_ACUTE "s 2026", 1,
                "R" E_ACUTE "sum" E_ACUTE " des contrats sign" E_ACUTE "s 2026");
    expect_name("R" E_ACUTE "sum" E_ACUTE " des contrats sign" E_ACUTE "s 2026", 3,
                "R" E_ACUTE "sum" E_ACUTE " des contrats sign" E_ACUTE "s  (3)");
    expect_name(NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON
                    NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON
                        NIHON NIHON NIHON NIHON,
                12,
                NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON
                    NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON NIHON
                " (12)");
    expect_name(GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN
                    GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN,
                2,
                GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN
                    GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN " (2)");
}

/* ---- Writing ---- */

static void test_every_cell_kind(void **state)
{
    static const struct exw_column cols[] = {
        {.header = "Text", .field = "t", .type = EXW_COL_STRING},
        {.header = "Amount", .field = "a", .type = EXW_COL_NUMBER, .format = "#,##0.00"},
        {.header = "Count", .field = "c", .type = EXW_COL_INTEGER},
        {.header = "Flag", .field = "f", .type = EXW_COL_BOOLEAN},
        {.header = "Day", .field = "d", .type = EXW_COL_DATE},
        {.header = "When", .field = "w", .type = EXW_COL_DATETIME, .width = 20},
        {.header = "=HEADER()", .field = "n", .type = EXW_COL_STRING, .width = 30},
    };
    const size_t ncols = sizeof(cols) / sizeof(cols[0]);
    struct exw_cell rows[][7] = {
        {text("plain"), number(1234.5), number(42), boolean(1), datetime(2026, 1, 2, 0, 0, 0),
         datetime(2026, 11, 25, 13, 45, 30.25), text("=1+2")},
        {text("+cmd"), number(-0.5), number(-7), boolean(0), datetime(1900, 1, 1, 0, 0, 0),
         datetime(9999, 12, 31, 23, 59, 59), text("-2")},
        {text("@SUM(A1)"), empty(), empty(), empty(), empty(), empty(), text("\tleading tab")},
        {text("_x0041_ stays, _x005F_x0041_ too"), number(1e-7), number(9007199254740992.0),
         empty(), datetime(1900, 3, 1, 0, 0, 0), empty(), text("ctl\001\037 and \r\n end ")},
        {text(NIHON "\xE6\x9C\xAC " GRIN), text(""), empty(), empty(), empty(), empty(),
         text("bad \xEF\xBF\xBF and \xEF\xBF\xBE xml")},
    };
    const char *want = "sheet 'Export' freeze=A2 filter=A1:G6\n"
                       "  width F 20.71\n"
                       "  width G 30.71\n"
                       "  A1 s 'Text' General bold\n"
                       "  B1 s 'Amount' General bold\n"
                       "  C1 s 'Count' General bold\n"
                       "  D1 s 'Flag' General bold\n"
                       "  E1 s 'Day' General bold\n"
                       "  F1 s 'When' General bold\n"
                       "  G1 s '=HEADER()' General bold\n"
                       "  A2 s 'plain' General\n"
                       "  B2 n 1234.5 #,##0.00\n"
                       "  C2 n 42 0\n"
                       "  D2 b True General\n"
                       "  E2 d datetime.datetime(2026, 1, 2, 0, 0) yyyy-mm-dd\n"
                       "  F2 d datetime.datetime(2026, 11, 25, 13, 45, 30, 250000) "
                       "yyyy-mm-dd hh:mm:ss\n"
                       "  G2 s '=1+2' General\n"
                       "  A3 s '+cmd' General\n"
                       "  B3 n -0.5 #,##0.00\n"
                       "  C3 n -7 0\n"
                       "  D3 b False General\n"
                       "  E3 d datetime.datetime(1900, 1, 1, 0, 0) yyyy-mm-dd\n"
                       "  F3 d datetime.datetime(9999, 12, 31, 23, 59, 59) yyyy-mm-dd hh:mm:ss\n"
                       "  G3 s '-2' General\n"
                       "  A4 s '@SUM(A1)' General\n"
                       "  G4 s '\\tleading tab' General\n"
                       "  A5 s '_x0041_ stays, _x005F_x0041_ too' General\n"
                       "  B5 n 1e-07 #,##0.00\n"
                       "  C5 n 9007199254740992 0\n"
                       "  E5 d datetime.datetime(1900, 3, 1, 0, 0) yyyy-mm-dd\n"
                       "  G5 s 'ctl\\x01\\x1f and \\r\\n end ' General\n"
                       "  A6 s '日本 😀' General\n"
                       "  G6 s 'bad \\uffff and \\ufffe xml' General\n"
                       "xl/worksheets/sheet1.xml formulas=0 inline=17\n";
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = NULL;
    char path[600];
    size_t i;

    (void)state;
    path_for(path, sizeof(path), "kinds.xlsx");
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Export", cols, ncols, 0, &x, &eb), EXW_OK);
    assert_non_null(x);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(exw_xlsx_write_row(x, rows[i], &eb), EXW_OK);
    assert_int_equal(exw_xlsx_close(x, &eb), EXW_OK);
    expect_workbook(path, want);
    unlink(path);
}

/* Open file descriptors of this process. */
static int count_fds(void)
{
    struct dirent *e;
    int n = 0;
    DIR *d;

    d = opendir("/proc/self/fd");
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The two columns of test_in_memory and write_numbered. */
static const struct exw_column numbered_cols[] = {
    {.header = "N", .field = "n", .type = EXW_COL_INTEGER},
    {.header = "Label", .field = "l", .type = EXW_COL_STRING},
};

/* A workbook opened without a path is made in the process's memory: no file
 * is opened for its temporary files or its zip, on disk or in memory, and
 * exw_xlsx_close_memory() hands over the same workbook as one on disk, here
 * over two sheets. One opened with a tmpdir keeps its sheet's rows in a file
 * of that folder. */
static void test_in_memory(void **state)
{
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = NULL;
    struct exw_cell row[2];
    char path[600], copy[600], *data = NULL;
    size_t len = 0;
    FILE *out;
    int before, i;

    (void)state;
    before = count_fds();
    assert_int_equal(exw_xlsx_open(NULL, tmpdir, "Mem", numbered_cols, 2, 3, &x, &eb), EXW_OK);
    for (i = 1; i <= 3; i++) {
        row[0] = number(i);
        row[1] = text(i == 3 ? "three" : "one or two");
        assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_OK);
        assert_int_equal(count_fds(), before);
    }
    assert_int_equal(exw_xlsx_close_memory(x, &data, &len, &eb), EXW_OK);
    assert_int_equal(count_fds(), before);
    assert_non_null(data);
    assert_true(len > 1000);
    /* Saved where the reader can open it. */
    path_for(copy, sizeof(copy), "in-memory.xlsx");
    out = fopen(copy, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
    free(data);
    expect_workbook(copy, "sheet 'Mem' freeze=A2 filter=A1:B3\n"
                          "  A1 s 'N' General bold\n"
                          "  B1 s 'Label' General bold\n"
                          "  A2 n 1 0\n"
                          "  B2 s 'one or two' General\n"
                          "  A3 n 2 0\n"
                          "  B3 s 'one or two' General\n"
                          "sheet 'Mem (2)' freeze=A2 filter=A1:B2\n"
                          "  A1 s 'N' General bold\n"
                          "  B1 s 'Label' General bold\n"
                          "  A2 n 3 0\n"
                          "  B2 s 'three' General\n"
                          "xl/worksheets/sheet1.xml formulas=0 inline=4\n"
                          "xl/worksheets/sheet2.xml formulas=0 inline=3\n");
    expect_levels(copy, 2);
    unlink(copy);
    /* exw_xlsx_close() drops a workbook in memory; a workbook on disk has no
     * bytes to hand over. */
    assert_int_equal(exw_xlsx_open(NULL, NULL, "Mem", numbered_cols, 2, 0, &x, &eb), EXW_OK);
    assert_int_equal(exw_xlsx_close(x, &eb), EXW_OK);
    assert_int_equal(count_fds(), before);
    /* With a folder: the sheet's rows in a file there. */
    path_for(path, sizeof(path), "on-disk.xlsx");
    before = count_fds();
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Disk", numbered_cols, 2, 0, &x, &eb), EXW_OK);
    assert_int_equal(count_fds(), before + 1);
    exw_xlsx_discard(x);
}

/* Writes @nrows rows of two columns ("n", "label") with @rows_per_sheet. */
static void write_numbered(const char *path, const char *sheet, uint32_t rows_per_sheet, int nrows)
{
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = NULL;
    struct exw_cell row[2];
    char label[32];
    int i;

    assert_int_equal(exw_xlsx_open(path, tmpdir, sheet, numbered_cols, 2, rows_per_sheet, &x, &eb),
                     EXW_OK);
    for (i = 1; i <= nrows; i++) {
        snprintf(label, sizeof(label), "row %d", i);
        row[0] = number(i);
        row[1] = text(label);
        assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_OK);
    }
    assert_int_equal(exw_xlsx_close(x, &eb), EXW_OK);
}

static void EXW_PRINTF(3, 4) appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* Checks what write_numbered() wrote: @nrows rows, @per_sheet to a sheet, on
 * sheets named @names. */
static void expect_numbered(const char *path, const char *const *names, int per_sheet, int nrows)
{
    char want[8192] = "";
    int sheet, r, n = 1, last;

    for (sheet = 0; n <= nrows || sheet == 0; sheet++) {
        last = n + per_sheet - 1 < nrows ? n + per_sheet - 1 : nrows;
        /* Python's repr() quotes with " when the text holds a '. */
        appendf(want, sizeof(want), strchr(names[sheet], '\'') ? "sheet \"%s\"" : "sheet '%s'",
                names[sheet]);
        appendf(want, sizeof(want), " freeze=A2 filter=A1:B%d\n", last - n + 2);
        appendf(want, sizeof(want), "  A1 s 'N' General bold\n  B1 s 'Label' General bold\n");
        for (r = 2; n <= last; r++, n++)
            appendf(want, sizeof(want), "  A%d n %d 0\n  B%d s 'row %d' General\n", r, n, r, n);
    }
    for (r = 0; r < sheet; r++) {
        last = r + 1 < sheet ? per_sheet : nrows - r * per_sheet;
        appendf(want, sizeof(want), "xl/worksheets/sheet%d.xml formulas=0 inline=%d\n", r + 1,
                2 + last);
    }
    assert_null(names[sheet]);
    expect_workbook(path, want);
}

static void test_continuation(void **state)
{
    static const char *const data[] = {"Data", "Data (2)", "Data (3)", "Data (4)", NULL};
    static const char *const data1[] = {"Data", NULL};
    static const char *const limit[] = {"Quarterly contract export 2026A",
                                        "Quarterly contract export 2 (2)",
                                        "Quarterly contract export 2 (3)", NULL};
    /* 31 characters: 12, then 14 three-byte ones, a four-byte one at the cut, 4 more. */
    static const char *const multibyte[] = {
        "Caf" E_ACUTE "s d'" E_ACUTE "t" E_ACUTE " " NIHON14 GRIN NIHON NIHON NIHON NIHON,
        "Caf" E_ACUTE "s d'" E_ACUTE "t" E_ACUTE " " NIHON14 GRIN " (2)", NULL};
    static const char *const three[] = {"Data", "Data (2)", "Data (3)", NULL};
    static const char *const two[] = {"Data", "Data (2)", NULL};
    char path[600];

    (void)state;
    path_for(path, sizeof(path), "continued.xlsx");

    /* rows_per_sheet counts the header: 4 holds three rows, so 7 rows take 3 sheets. */
    write_numbered(path, "Data", 4, 7);
    expect_numbered(path, three, 3, 7);
    expect_levels(path, 3); /* on disk as in memory */
    /* 3 holds two rows: 7 rows take 4 sheets. */
    write_numbered(path, "Data", 3, 7);
    expect_numbered(path, data, 2, 7);
    /* A full sheet is not followed by an empty one. */
    write_numbered(path, "Data", 3, 4);
    expect_numbered(path, two, 2, 4);
    /* No rows: the header alone; 1 row per sheet is taken as 2. */
    write_numbered(path, "Data", 0, 0);
    expect_numbered(path, data1, 2, 0);
    write_numbered(path, "Data", 1, 3);
    expect_numbered(path, three, 1, 3);

    /* A name at the 31-character limit is shortened for the next sheets. */
    write_numbered(path, limit[0], 2, 3);
    expect_numbered(path, limit, 1, 3);
    /* Multi-byte characters, and an apostrophe the autofilter's name must quote. */
    write_numbered(path, multibyte[0], 2, 2);
    expect_numbered(path, multibyte, 1, 2);
    unlink(path);
}

/* ---- Errors ---- */

static const struct exw_column one_col[] = {
    {.header = "A", .field = "a", .type = EXW_COL_STRING},
    {.header = "B", .field = "b", .type = EXW_COL_NUMBER},
};

static void expect_open_error(const char *sheet, const struct exw_column *cols, size_t ncols,
                              const char *dir, exw_err want, const char *msg)
{
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = (struct exw_xlsx *)1;
    struct stat st;
    char path[600];

    path_for(path, sizeof(path), "not-written.xlsx");
    assert_int_equal(exw_xlsx_open(path, dir, sheet, cols, ncols, 0, &x, &eb), want);
    assert_null(x);
    assert_string_equal(eb.msg, msg);
    /* Nothing is written when opening fails. */
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_open_errors(void **state)
{
    struct exw_column cols[2];
    char long_format[EXW_XLSX_FORMAT_MAX + 2];
    char missing[600];
    char want[sizeof(((struct exw_errbuf *)0)->msg)];
    char *big_header;
    int fds;

    (void)state;
    expect_open_error("bad/name", one_col, 2, tmpdir, EXW_EXLSX,
                      "sheet name \"bad/name\": Worksheet name cannot contain invalid "
                      "characters: '[ ] : * ? / \\'");
    expect_open_error("Thirty-two characters, one extra", one_col, 2, tmpdir, EXW_EXLSX,
                      "sheet name \"Thirty-two characters, one extra\": Worksheet name "
                      "exceeds Excel's limit of 31 characters.");
    expect_open_error("Data", one_col, 0, tmpdir, EXW_EXLSX, "0 columns: a sheet holds 1 to 16384");
    expect_open_error("Data", one_col, 16385, tmpdir, EXW_EXLSX,
                      "16385 columns: a sheet holds 1 to 16384");

    memcpy(cols, one_col, sizeof(cols));
    memset(long_format, '0', sizeof(long_format) - 1);
    long_format[sizeof(long_format) - 1] = '\0';
    cols[1].format = long_format;
    expect_open_error("Data", cols, 2, tmpdir, EXW_EXLSX,
                      "column 2: number format longer than 127 bytes");
    long_format[EXW_XLSX_FORMAT_MAX] = '\0';
    cols[1].width = 255.5;
    expect_open_error("Data", cols, 2, tmpdir, EXW_EXLSX, "column 2: width 255.5 is not 0 to 255");
    cols[1].width = NAN;
    expect_open_error("Data", cols, 2, tmpdir, EXW_EXLSX, "column 2: width nan is not 0 to 255");

    /* A header Excel cannot hold: the sheet and its temporary file exist by
     * then, and the file is closed. */
    fds = count_fds();
    big_header = malloc(32769);
    assert_non_null(big_header);
    memset(big_header, 'h', 32768);
    big_header[32768] = '\0';
    memcpy(cols, one_col, sizeof(cols));
    cols[0].header = big_header;
    expect_open_error("Data", cols, 2, tmpdir, EXW_EXLSX,
                      "sheet \"Data\", header of column 1: String exceeds Excel's limit of "
                      "32,767 characters.");
    free(big_header);
    assert_int_equal(count_fds(), fds);

    /* libxlsxwriter would quietly use /tmp instead. */
    snprintf(missing, sizeof(missing), "%s/no-such-dir", tmpdir);
    /* Cut to the errbuf's size, as the message is. */
    assert_true(snprintf(want, sizeof(want), "temporary folder %.160s: No such file or directory",
                         missing) > 0);
    expect_open_error("Data", one_col, 2, missing, EXW_EXLSX, want);
}

static struct exw_errbuf eb_last;

/* Writes one sheet of two rows per @nsheets to @path, which cannot be
 * written: closing fails, its message in eb_last. */
static void write_rows_then_fail(const char *path, const char *dir, int nsheets)
{
    struct exw_cell row[2] = {text("ok"), number(1)};
    struct exw_xlsx *x = NULL;
    int i;

    assert_int_equal(exw_xlsx_open(path, dir, "Data", one_col, 2, 3, &x, &eb_last), EXW_OK);
    for (i = 0; i < 2 * nsheets; i++)
        assert_int_equal(exw_xlsx_write_row(x, row, &eb_last), EXW_OK);
    assert_int_equal(exw_xlsx_close(x, &eb_last), EXW_EXLSX);
}

static void test_write_errors(void **state)
{
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = NULL;
    struct exw_cell row[2] = {text("ok"), number(1)};
    char path[600];
    char *big;
    int fds;

    (void)state;
    path_for(path, sizeof(path), "errors.xlsx");

    /* Excel's 32,767 characters: counted in characters, not bytes. */
    big = malloc(2 * 32768 + 1);
    assert_non_null(big);
    for (int i = 0; i < 32767; i++)
        memcpy(big + 2 * i, E_ACUTE, 2);
    big[2 * 32767] = '\0';
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Data", one_col, 2, 0, &x, &eb), EXW_OK);
    row[0] = text(big);
    assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_OK);
    memcpy(big + 2 * 32767, E_ACUTE, 3);
    assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_EXLSX);
    assert_string_equal(eb.msg,
                        "row 2, column 1: String exceeds Excel's limit of 32,767 characters.");
    /* The error is sticky, through to close. */
    row[0] = text("fine");
    assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_EXLSX);
    assert_string_equal(eb.msg, "the workbook is incomplete after an earlier error");
    assert_int_equal(exw_xlsx_close(x, &eb), EXW_EXLSX);
    assert_string_equal(eb.msg, "the workbook is incomplete after an earlier error");
    assert_int_equal(access(path, F_OK), -1); /* not written at all */
    free(big);

    /* A number Excel cannot store. */
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Data", one_col, 2, 0, &x, &eb), EXW_OK);
    row[1] = number(INFINITY);
    assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_EXLSX);
    assert_string_equal(eb.msg, "row 1, column 2: number is not finite");
    assert_int_equal(exw_xlsx_close(x, &eb), EXW_EXLSX);
    assert_int_equal(access(path, F_OK), -1);

    /* The file cannot be created: the error comes at close, and the sheets'
     * temporary files are closed all the same. */
    fds = count_fds();
    snprintf(path, sizeof(path), "%s/no-such-dir/out.xlsx", tmpdir);
    write_rows_then_fail(path, tmpdir, 1);
    assert_non_null(strstr(eb_last.msg,
                           "no-such-dir/out.xlsx: Error creating output xlsx file. "
                           "Usually a permissions error. (No such file or directory)"));
    write_rows_then_fail(path, tmpdir, 3);
    assert_int_equal(count_fds(), fds);

    /* A full disk, which fails with some sheets packed and others not. */
    write_rows_then_fail("/dev/full", tmpdir, 1);
    assert_non_null(strstr(eb_last.msg, "writing /dev/full: "));
    assert_non_null(strstr(eb_last.msg, "(No space left on device)"));
    write_rows_then_fail("/dev/full", tmpdir, 5);
    assert_int_equal(count_fds(), fds);

    /* The same with the temporary files in memory: none is left (the
     * sanitizer build would report the buffers). */
    write_rows_then_fail(path, NULL, 3);
    write_rows_then_fail("/dev/full", NULL, 5);
    assert_int_equal(count_fds(), fds);

    assert_int_equal(exw_xlsx_close(NULL, &eb), EXW_OK);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Entries of @dir, "." and ".." included. */
static int count_entries(const char *dir)
{
    struct dirent *e;
    int n = 0;
    DIR *d = opendir(dir);

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n++;
    closedir(d);
    return n;
}

/* An abandoned workbook is freed at once: nothing packed, no file, no
 * temporary file or descriptor left. */
static void test_discard(void **state)
{
    struct exw_errbuf eb = {{0}};
    struct exw_xlsx *x = NULL;
    struct exw_cell row[2] = {text("a fairly long text cell to give the sheet some bulk"),
                              number(1)};
    char path[600];
    int fds, entries, i;
    double t0, took;

    (void)state;
    exw_xlsx_discard(NULL);
    path_for(path, sizeof(path), "discarded.xlsx");
    fds = count_fds();
    entries = count_entries(tmpdir);
    /* 300,000 rows over three sheets: closing would pack tens of MB. */
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Data", one_col, 2, 100001, &x, &eb), EXW_OK);
    for (i = 0; i < 300000; i++) {
        row[1] = number(i);
        assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_OK);
    }
    t0 = now_s();
    exw_xlsx_discard(x);
    took = now_s() - t0;
    assert_true(took < 0.25);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(count_entries(tmpdir), entries);

    /* Also after a failed row (the sticky error). */
    assert_int_equal(exw_xlsx_open(path, tmpdir, "Data", one_col, 2, 0, &x, &eb), EXW_OK);
    row[1] = number(INFINITY);
    assert_int_equal(exw_xlsx_write_row(x, row, &eb), EXW_EXLSX);
    exw_xlsx_discard(x);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sheet_name),   cmocka_unit_test(test_every_cell_kind),
        cmocka_unit_test(test_continuation), cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_write_errors), cmocka_unit_test(test_discard),
        cmocka_unit_test(test_in_memory),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
