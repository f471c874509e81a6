/* tokenizer.h - GGUF tokenizers: SentencePiece (llama) and GPT-2 byte-level BPE.
 *
 * Reproduces llama.cpp's llama-vocab.cpp / unicode.cpp behaviour:
 *   - "llama" (SPM): llm_tokenizer_spm (bigram merging by score, U+2581 for
 *     spaces, add_space_prefix, <0xXX> byte fallback).
 *   - "gpt2" (byte-level BPE): byte-to-unicode mapping, merges by rank, and the
 *     pre-tokenizer named by tokenizer.ggml.pre, run with PCRE2 (UTF|UCP) the
 *     way unicode_regex_split applies its regex lists (each regex splits the
 *     pieces of the previous one; matches and unmatched gaps both become
 *     pieces). Supported pre-tokenizers: default (also when the key is
 *     missing), gpt-2 family, smollm/starcoder/refact/command-r family,
 *     deepseek-coder, llama3/llama-bpe family, qwen2 family. Any other name is
 *     an error (MOME_ERR_UNSUPPORTED) naming it, as llama.cpp does.
 *   - Special tokens (control / user-defined / unknown) are split out of the
 *     text first, longest text first, as llama.cpp's tokenizer_st_partition.
 *
 * Everything read from the file is validated at load: a bad vocabulary,
 * scores/token_type arrays of the wrong type or length, a malformed merge or
 * one naming a missing token is an error; special-token ids out of range are
 * treated as absent (or the llama.cpp default when that is in range).
 *
 * Invalid UTF-8 in the input never crashes: for BPE each invalid byte becomes
 * U+FFFD (as llama.cpp's unicode_cpts_from_utf8; code points above U+10FFFF
 * from F5..F7 lead bytes, on which llama.cpp throws, also become U+FFFD); for
 * SPM the bytes are used raw and fall back to <0xXX> tokens, as llama.cpp.
 *
 * The tokenizer keeps pointers into the gguf mapping: the gguf_file must
 * outlive it. It is read-only after load, so one tokenizer may be used from
 * several threads at once.
 */
#ifndef MOME_TOKENIZER_H
#define MOME_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tokenizer tokenizer;

enum tokenizer_type { TOKENIZER_SPM = 1, TOKENIZER_BPE = 2 };

/* Token attributes (as llama.cpp's llama_token_attr, the subset we use). */
enum tokenizer_attr {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
};

/* Build the tokenizer from f's tokenizer.ggml.* metadata. Returns MOME_OK and
 * *out, or a negative status with mome_errmsg() set (*out = NULL). */
int tokenizer_load(const gguf_file *f, tokenizer **out);
void tokenizer_free(tokenizer *t);

int tokenizer_type(const tokenizer *t);          /* enum tokenizer_type */
const char *tokenizer_pre_name(const tokenizer *t); /* "" for SPM */
int32_t tokenizer_n_vocab(const tokenizer *t);
/* Special ids, -1 if none. */
int32_t tokenizer_bos(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t);
int32_t tokenizer_eot(const tokenizer *t);
int32_t tokenizer_unk(const tokenizer *t);
int32_t tokenizer_pad(const tokenizer *t);
/* Whether add_special prepends BOS / appends EOS for this model. */
int tokenizer_add_bos(const tokenizer *t);
int tokenizer_add_eos(const tokenizer *t);

/* End of generation: EOS, EOT, EOM and tokens such as <|im_end|>,
 * <|endoftext|>, <|eot_id|>, FIM pad/repo/sep (llama.cpp's special_eog_ids). */
int tokenizer_is_eog(const tokenizer *t, int32_t id);
int tokenizer_is_control(const tokenizer *t, int32_t id);
/* enum tokenizer_attr bits of id (0 if out of range). */
int tokenizer_attr(const tokenizer *t, int32_t id);
/* Raw token text (as stored in the file; not NUL-terminated). NULL if id is
 * out of range. */
const char *tokenizer_text(const tokenizer *t, int32_t id, size_t *len);
/* Id of the token whose text is exactly `text` (NUL-terminated), or -1. */
int32_t tokenizer_find(const tokenizer *t, const char *text);

/* Tokenize text[0..len). add_special: BOS (and EOS) as the model asks.
 * parse_special: control/unknown token texts in the input become their ids
 * (user-defined tokens always do, as in llama.cpp). Writes at most cap ids and
 * returns the full count (> cap: call again with a bigger buffer), or a
 * negative status. text may be NULL when len == 0. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     int parse_special, int32_t *ids, int cap);

/* Bytes of token id as they appear in text (SPM: U+2581 -> ' ', <0xXX> ->
 * byte; BPE: byte mapping reversed). Control/unknown tokens give their text
 * only if render_special (else 0 bytes); user-defined tokens always render.
 * Returns the length (written only if <= cap; not NUL-terminated) or a
 * negative status for an invalid id. Pieces may be partial UTF-8. */
int tokenizer_token_to_piece(const tokenizer *t, int32_t id, char *buf, int cap,
                             int render_special);

#endif
