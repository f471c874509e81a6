/* gguf.h - GGUF (v2/v3) reader: memory-mapped, every field validated.
 *
 * gguf_open() maps the file read-only and walks the header, the key/value
 * metadata and the tensor table once, checking every count, length, type,
 * offset and size against the file before it is used, so a truncated or
 * hostile file is rejected with one message that names the file, the byte
 * offset and the field. After a successful open every pointer handed out
 * (strings, arrays, tensor data) lies inside the mapping and stays valid
 * until gguf_close().
 *
 * Strings are NOT NUL-terminated: they are (ptr, len) views into the map.
 */
#ifndef MOME_GGUF_H
#define MOME_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str {
    const char *ptr;     /* into the mapping, not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;       /* enum gguf_vtype */
    uint32_t arr_type;   /* element type when type == ARRAY */
    uint64_t n;          /* element count when type == ARRAY, else 1 */
    const uint8_t *data; /* scalar value / first array element (unaligned) */
    gguf_str *strs;      /* STRING value or ARRAY of STRING: n views */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];  /* ne[0] is the contiguous dimension */
    uint32_t type;              /* enum mome_dtype */
    uint64_t offset;            /* relative to the data section */
    size_t nbytes;
    const void *data;           /* inside the mapping */
} gguf_tensor;

typedef struct gguf_file {
    char *path;
    int fd;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint32_t alignment;
    size_t data_offset;         /* start of the tensor data section */
} gguf_file;

/* Open and validate. Returns MOME_OK and *out, or an error (mome_errmsg). */
int gguf_open(const char *path, gguf_file **out);
/* Validate an in-memory image (no mapping; used by tests and fuzzers). The
 * buffer must outlive the returned handle. */
int gguf_open_buffer(const void *buf, size_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *f);

const char *gguf_type_name(uint32_t vtype);

/* Metadata lookup: index of key or -1. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
const gguf_kv *gguf_get_kv(const gguf_file *f, const char *key);

/* Typed getters. Return 1 if found and converted, 0 if the key is absent
 * (out untouched), negative (with error message) if present with an
 * incompatible type or out of range. Integer getters accept any integer
 * type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array getter: element type must be elem_type (for integers any integer
 * type of the same size is NOT accepted: exact match). */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type,
                 const gguf_kv **out);

/* Read element i of a numeric array (any numeric element type) as double. */
double gguf_arr_get_num(const gguf_kv *kv, uint64_t i);

/* Tensor lookup by name; NULL if absent. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Compare a view with a C string. */
int gguf_str_eq(gguf_str s, const char *c);

/* Format a value for display (arrays: count and first elements). Writes at
 * most cap bytes including NUL. */
void gguf_format_value(const gguf_kv *kv, char *buf, size_t cap);

#endif
