/* gguf_write.h - GGUF v3 writer: an in-memory builder, written atomically.
 *
 * Build a file with gguf_writer_init(), add key/values and tensors in the
 * order they should appear, then write it with gguf_writer_write_file() (or
 * to memory with gguf_writer_write_buffer()). The writer only produces files
 * that gguf_open() accepts: keys must be non-empty and unique (adding an
 * existing key replaces its value in place), tensor names 1..63 bytes and
 * unique, types known to quant_get_traits(), ne[0] a multiple of the block
 * size and nbytes exactly the tensor's size.
 *
 * Layout (as ggml's gguf writer): header, kv pairs, tensor infos, zero
 * padding to the alignment, then each tensor's data at the next multiple of
 * the alignment, with zero padding after every tensor (the last included).
 *
 * Tensor data is either copied into the writer (GGUF_WRITER_COPY) or only
 * referenced (GGUF_WRITER_REF: the caller keeps it alive and unchanged until
 * the last write call); referenced data is written straight from the
 * caller's memory, never copied. data == NULL writes zeros.
 *
 * gguf_writer_write_file() never leaves a partial file at path: it writes
 * "<path>.tmp.<pid>" in the same directory, fsyncs it, renames it over path
 * and fsyncs the directory; on any failure the temporary file is removed and
 * whatever was at path before is untouched.
 *
 * All functions return MOME_OK or a negative mome_status with a message in
 * mome_errmsg(); on failure the writer is unchanged. Little-endian hosts only
 * (GGUF is little-endian).
 */
#ifndef MOME_GGUF_WRITE_H
#define MOME_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct gguf_writer gguf_writer;

enum gguf_writer_data_mode {
    GGUF_WRITER_COPY = 0, /* copy the bytes now */
    GGUF_WRITER_REF = 1,  /* keep the pointer; caller owns the bytes */
};

/* New empty writer (alignment 32). Returns MOME_OK and *out, or an error. */
int gguf_writer_init(gguf_writer **out);
void gguf_writer_free(gguf_writer *w);

/* Data alignment: a power of two in [1, 1 MiB]. Also records it as the u32
 * key general.alignment (as ggml does); removing that key restores 32. */
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);
uint32_t gguf_writer_alignment(const gguf_writer *w);

/* Scalars. Adding "general.alignment" with add_u32 is set_alignment; with any
 * other type it is refused (the reader would reject the file). */
int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v); /* v != 0 */
/* NUL-terminated string / explicit length (may hold any bytes). */
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s);
int gguf_writer_add_strn(gguf_writer *w, const char *key, const char *s, size_t len);

/* Array of n numbers of elem_type (any numeric type or BOOL; bools are one
 * byte each, 0 or 1). data holds n packed little-endian elements. */
int gguf_writer_add_arr(gguf_writer *w, const char *key, uint32_t elem_type,
                        const void *data, size_t n);
/* Array of n strings; lens == NULL: NUL-terminated, else lens[i] bytes. */
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const size_t *lens, size_t n);

/* Copy one key/value as read by gguf_open() (e.g. to carry a base model's
 * metadata into a derived file). */
int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv);

/* Remove a key if present (returns 1 if removed, 0 if absent). */
int gguf_writer_remove_key(gguf_writer *w, const char *key);

/* Tensor: n_dims in 1..4, ne[0] contiguous, type an enum mome_dtype. nbytes
 * must equal the size implied by ne and type. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims,
                           const int64_t *ne, uint32_t type, const void *data,
                           size_t nbytes, enum gguf_writer_data_mode mode);

uint64_t gguf_writer_n_kv(const gguf_writer *w);
uint64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Total size of the file the writer would produce now. */
size_t gguf_writer_size(const gguf_writer *w);

/* Write atomically to path (see above). */
int gguf_writer_write_file(const gguf_writer *w, const char *path);
/* Serialize into a malloc'd buffer (free with free()). */
int gguf_writer_write_buffer(const gguf_writer *w, void **buf, size_t *size);

/* Controls the fsyncs of write_file (default on). Off only for throwaway
 * files (tests): the rename is still atomic, not durable. */
void gguf_writer_set_fsync(gguf_writer *w, int on);

#endif
