/* xlsx_hooks.h: calls of libxlsxwriter's answered here (for xlsx.c).
 *
 * Among them, those that build a small workbook in the process's memory:
 * libxlsxwriter's temporary files, and the zip it packs, go to buffers of the
 * process's own while the thread that works on it says so; the zip reaches
 * its file in one write when it is closed. See xlsx_hooks.c. */
#ifndef EXW_XLSX_HOOKS_H
#define EXW_XLSX_HOOKS_H

/* One temporary file in memory. */
struct exw_mem_part;

/* From now on, the temporary files and zip that libxlsxwriter opens on this
 * thread are in memory, each temporary file listed on *@parts while open;
 * NULL gives them back to the library (on disk). Thread: any, for itself. */
void exw_xlsx_memory_use(struct exw_mem_part **parts);

/* Closes and frees every part still on *@parts (those a failed
 * workbook_close() leaves open). */
void exw_xlsx_memory_close_all(struct exw_mem_part **parts);

#endif
