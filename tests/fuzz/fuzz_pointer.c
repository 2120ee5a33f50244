/* fuzz_pointer.c: libFuzzer target for the JSON parser and the RFC 6901
 * resolver: the input is "<pointer>\n<json document>". */
#include <stddef.h>
#include <stdint.h>
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
    size_t plen;
    char num[32];

    if (nl == NULL)
        return 0;
    plen = (size_t)(nl - (const char *)data);
    if (plen >= sizeof(pointer))
        return 0;
    memcpy(pointer, data, plen);
    pointer[plen] = '\0';
    if (exw_json_parse(nl + 1, size - plen - 1, 32, &root, &eb) != EXW_OK)
        return 0;
    if (exw_json_pointer(root, pointer, &found) == EXW_OK && found != NULL &&
        cJSON_IsNumber((const cJSON *)found))
        exw_json_format_number(((const cJSON *)found)->valuedouble, num);
    cJSON_Delete(root);
    return 0;
}
