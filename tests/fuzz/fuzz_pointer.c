/* fuzz_pointer.c: libFuzzer target for the JSON checker and parser and the
 * RFC 6901 resolvers: the input is "<pointer>\n<json document>". The text
 * resolver must name what the tree resolver names, with the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "exw/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    struct exw_errbuf eb;
    const struct cJSON *found;
    struct cJSON *root = NULL;
    char pointer[256];
    struct exw_json_value text_root, v;
    size_t plen;
    char num[32];
    exw_err rc;
    double d;

    if (nl == NULL)
        return 0;
    plen = (size_t)(nl - (const char *)data);
    if (plen >= sizeof(pointer))
        return 0;
    memcpy(pointer, data, plen);
    pointer[plen] = '\0';
    if (exw_json_parse(nl + 1, size - plen - 1, 32, &root, &eb) != EXW_OK) {
        /* The checker alone must say the same. */
        if (exw_json_check(nl + 1, size - plen - 1, 32, NULL) == EXW_OK)
            abort();
        return 0;
    }
    exw_json_root(nl + 1, size - plen - 1, &text_root);
    rc = exw_json_pointer(root, pointer, &found);
    /* The text resolver names what the tree resolver names. */
    if (exw_json_pointer_text(&text_root, pointer, &v) != rc ||
        (found == NULL) != (v.kind == EXW_JSON_NONE))
        abort();
    if (found != NULL && cJSON_IsNumber((const cJSON *)found)) {
        exw_json_format_number(((const cJSON *)found)->valuedouble, num);
        if (exw_json_number(&v, &d) != EXW_OK ||
            (d != ((const cJSON *)found)->valuedouble && d == d))
            abort();
    } else if (found != NULL && cJSON_IsString((const cJSON *)found)) {
        char *decoded = exw_json_string_dup(&v, NULL);

        if (strcmp(decoded, ((const cJSON *)found)->valuestring) != 0)
            abort();
        free(decoded);
    }
    cJSON_Delete(root);
    return 0;
}
