/* quant.h - tensor element types, (de)quantization and dot-product kernels.
 *
 * Type ids and block layouts are those of ggml/GGUF (bit-exact), so weights
 * are used straight from the memory-mapped file. For matrix products the
 * activations are quantized once per row to the weight type's "vec_dot type"
 * (as llama.cpp does: Q4_0/Q8_0 -> Q8_0, Q4_1 -> Q8_1, K-quants -> Q8_K,
 * F32/F16/BF16 -> F32), then integer dot products run block by block.
 *
 * Kernels are chosen once at start-up (quant_init): AVX-512 VNNI (on top of
 * AVX2) or AVX2+FMA+F16C when the CPU has them, else the scalar reference.
 * The scalar code is the spec; the SIMD versions are tested against it, and
 * the VNNI table against the AVX2 one bit for bit.
 */
#ifndef MOME_QUANT_H
#define MOME_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's numbering (GGUF tensor type field). */
enum mome_dtype {
    MOME_DTYPE_F32 = 0,
    MOME_DTYPE_F16 = 1,
    MOME_DTYPE_Q4_0 = 2,
    MOME_DTYPE_Q4_1 = 3,
    MOME_DTYPE_Q5_0 = 6,
    MOME_DTYPE_Q5_1 = 7,
    MOME_DTYPE_Q8_0 = 8,
    MOME_DTYPE_Q8_1 = 9,
    MOME_DTYPE_Q2_K = 10,
    MOME_DTYPE_Q3_K = 11,
    MOME_DTYPE_Q4_K = 12,
    MOME_DTYPE_Q5_K = 13,
    MOME_DTYPE_Q6_K = 14,
    MOME_DTYPE_Q8_K = 15,
    MOME_DTYPE_BF16 = 30,
    MOME_DTYPE_COUNT = 40,
};

/* Static facts about a type. blck: elements per block; type_size: bytes per
 * block. supported: we can dequantize and matmul it. */
typedef struct quant_traits {
    const char *name;
    int64_t blck;
    size_t type_size;
    int supported;
    enum mome_dtype vec_dot_type;  /* activation format for matmul */
} quant_traits;

/* Traits for a type id from a file; NULL if the id is unknown/invalid. */
const quant_traits *quant_get_traits(uint32_t type);

/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the type is unknown. */
size_t quant_row_size(enum mome_dtype t, int64_t n);

/* Pick SIMD or scalar kernels (idempotent). force_scalar: for tests.
 * Default: the most capable table the CPU runs (avx512vnni > avx2 > scalar),
 * capped by the environment variable MOME_KERNELS if it names a lower one. */
void quant_init(int force_scalar);
/* Select a table by name ("scalar", "avx2", "avx512vnni"); -1 if this CPU
 * cannot run it (nothing changes then). For tests and measurements. */
int quant_init_kernels(const char *name);
/* "avx512vnni", "avx2" or "scalar" */
const char *quant_kernel_name(void);

/* Row conversion: n elements of src (type t) -> f32. n multiple of blck. */
void quant_dequantize_row(enum mome_dtype t, const void *src, float *dst, int64_t n);
/* f32 -> type t (reference quantizers, used by tests and writers). Supported
 * targets: F32, F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q8_K, Q4_K, Q6_K. */
void quant_quantize_row(enum mome_dtype t, const float *src, void *dst, int64_t n);

/* Activation quantization for a weight of type wt: f32 row of n -> the
 * vec_dot_type of wt, into dst (quant_act_row_size(wt, n) bytes). */
size_t quant_act_row_size(enum mome_dtype wt, int64_t n);
void quant_quantize_act(enum mome_dtype wt, const float *src, void *dst, int64_t n);

/* dot(weight row w of type wt, activation row a already quantized by
 * quant_quantize_act for wt) over n elements. */
float quant_vec_dot(enum mome_dtype wt, int64_t n, const void *w, const void *a);

/* Matrix product on a slice of output rows:
 *   Y[t*ldy + r] = dot(W row r, A row t)  for r in [r0, r1), t in [0, nt)
 * W: rows of quant_row_size(wt, n) bytes, row r at W + r*w_stride.
 * A: nt activation rows quantized for wt, row t at A + t*a_stride.
 * Blocks over several rows and tokens so each weight block is loaded once
 * per group of tokens. Called by each thread with its own [r0, r1). Types
 * whose every kernel gives vec_dot's bits (Q4_1 and Q8_0 with AVX-512 VNNI)
 * take quant_matmul_solo's 8-token kernels: the same bits, 1.7x faster. */
void quant_matmul(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride,
                  const void *A, size_t a_stride, int nt, float *Y, int64_t ldy,
                  int64_t r0, int64_t r1);

/* quant_matmul for rows that are one token each of different sequences
 * (batched decoding): every activation row t gets the bits quant_matmul
 * gives it alone (nt == 1), whatever nt. With AVX-512 VNNI, Q4_1 and Q8_0
 * take groups of up to 8 tokens, two per 512-bit register (quant_vnni.c). Types whose 4-token tiles sum in
 * vec_dot's order keep them for whole groups of 4 tokens; the other
 * tokens take the one-token kernels (4-row tiles) one by one. */
void quant_matmul_solo(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride,
                       const void *A, size_t a_stride, int nt, float *Y, int64_t ldy,
                       int64_t r0, int64_t r1);

/* 1 if quant_matmul gives every activation row the bits it gets alone, for
 * any nt, under the active kernels (no tiled order for long products, 4-token
 * tiles in vec_dot's order): a prompt's rows then do not depend on how the
 * prompt was split into decode calls. Q6_K (llama.cpp's tiled order from 8
 * tokens on) and the 4-token tiles of F32 and Q4_0 are not. */
int quant_chunk_invariant(enum mome_dtype wt);

/* Row-interleaved ("packed") weights, for the types the active kernel table
 * streams faster that way (Q4_K, Q6_K, Q5_0, Q8_0 with AVX-512 VNNI): groups of
 * QUANT_PACK_ROWS rows, each group one super-block column after another,
 * the 16 rows of a super-block interleaved in 4-byte units (quant_impl.h has
 * the layouts; docs/ARCHITECTURE.md, "Packed weights"). A packed matrix has
 * the size of the plain one. Results are bit for bit those of quant_matmul /
 * quant_matmul_solo on the plain matrix. */
#define QUANT_PACK_ROWS 16
/* 1 if a (n_out, n) matrix of type wt should be packed for the active kernels */
int quant_pack_wanted(enum mome_dtype wt, int64_t n, int64_t n_out);
/* rows [0, n_out) (n_out a multiple of QUANT_PACK_ROWS) of the plain matrix W
 * (row r at W + r*w_stride) -> P (n_out * quant_row_size(wt, n) bytes) */
void quant_pack(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride, int64_t n_out, void *P);
/* row r of packed P -> n floats */
void quant_packed_dequantize_row(enum mome_dtype wt, int64_t n, const void *P, int64_t r, float *dst);
/* quant_matmul (solo = 0) or quant_matmul_solo (solo = 1) on packed P;
 * r0 and r1 multiples of QUANT_PACK_ROWS */
void quant_matmul_packed(enum mome_dtype wt, int64_t n, const void *P, const void *A, size_t a_stride, int nt,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1, int solo);

/* half <-> float (IEEE binary16 and bfloat16) */
/* sum x[i] * y[i] with the dispatched f32 kernel (ggml_vec_dot_f32 order;
 * identical bits under every kernel set). */
float quant_dot_f32(int64_t n, const float *x, const float *y);

float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

#endif
