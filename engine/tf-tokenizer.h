/* tf-tokenizer.h: byte-level BPE (SPEC §6, issue 3).
 *
 * Ids: 0..255 are the bytes; 256..256+M−1 are the merges in the order they
 * were learned; the seven special tokens take the last seven ids. Every byte
 * sequence encodes (invalid UTF-8 too) and decode(encode(x)) == x.
 * Text is first cut into chunks (an optional leading space followed by a run
 * of letters, of digits, of spaces or of other bytes); merges never cross a
 * chunk boundary. Letters are A–Z, a–z and every byte ≥ 0x80; spaces are
 * ' ', \t, \n, \v, \f, \r. A run of spaces followed by a non-space leaves
 * its last byte to the next chunk when that byte is ' ' ("a  b" → "a", " ",
 * " b"). Training is deterministic: ties between equally frequent pairs go
 * to the smaller (left id, right id). A tokenizer is read-only once built,
 * so several threads may encode with it at once. */
#pragma once

/* No token of any tokenizer is longer than this many bytes (loading refuses
 * one that is), so a text of more than max_seq_len × TF_TOKEN_MAX_BYTES bytes
 * cannot fit a model's context whatever it encodes to. */
#define TF_TOKEN_MAX_BYTES 256

#include <glib.h>
#include <stdint.h>
#include <stddef.h>

#include "tf-config.h"

G_BEGIN_DECLS

typedef enum {
  TF_SPECIAL_BOS,
  TF_SPECIAL_EOS,
  TF_SPECIAL_BOI,
  TF_SPECIAL_EOI,
  TF_SPECIAL_PAD,
  TF_SPECIAL_USER,
  TF_SPECIAL_ASSISTANT,
  TF_N_SPECIAL
} TfSpecial;

/* "<|bos|>", "<|eos|>", "<|boi|>", "<|eoi|>", "<|pad|>", "<|user|>", "<|assistant|>" */
const char *tf_special_text (TfSpecial special);

typedef struct _TfTokenizer TfTokenizer;

/* Learns merges from @n_texts texts (bytes, @lengths[i] each; a NULL
 * @lengths means NUL-terminated) until the vocabulary (bytes + merges +
 * specials) has @vocab_size entries, or no pair occurs twice (then smaller).
 * @vocab_size must be at least 256 + TF_N_SPECIAL. */
TfTokenizer *tf_tokenizer_train (const char *const *texts, const size_t *lengths, int n_texts,
                                 int vocab_size, GError **error);
void tf_tokenizer_free (TfTokenizer *tok);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfTokenizer, tf_tokenizer_free)

/* JSON as stored in a checkpoint's __metadata__["tokenizer"]:
 * {"type":"byte-bpe","version":1,"merges":[[a,b],...],"special":{"<|bos|>":id,...}}.
 * Loading validates everything (each merge refers to earlier ids, ids of
 * specials are the last seven) and names @what in errors. */
char *tf_tokenizer_to_json (const TfTokenizer *tok);
TfTokenizer *tf_tokenizer_from_json (const char *json, const char *what, GError **error);

int tf_tokenizer_vocab_size (const TfTokenizer *tok);
int32_t tf_tokenizer_special_id (const TfTokenizer *tok, TfSpecial special);
/* Sets vocab_size and the special ids of @config. */
void tf_tokenizer_apply_to_config (const TfTokenizer *tok, TfConfig *config);
/* Whether @config's vocabulary and special ids are this tokenizer's. */
gboolean tf_tokenizer_matches_config (const TfTokenizer *tok, const TfConfig *config,
                                      const char *what, GError **error);

/* Encodes @len bytes of @text as ordinary tokens. The text of a special token
 * in the input is encoded as ordinary bytes, never as the special id (so user
 * text cannot inject control tokens). Returns a new array; *n_tokens is set. */
int32_t *tf_tokenizer_encode (const TfTokenizer *tok, const char *text, size_t len,
                              size_t *n_tokens);
/* Appends to @out (a GArray of int32_t); returns the number appended. */
size_t tf_tokenizer_encode_append (const TfTokenizer *tok, const char *text, size_t len,
                                   GArray *out);
/* Decodes ids to bytes (NUL-terminated for convenience; *len excludes it).
 * Special tokens decode to their text; ids out of range are an error in
 * debug builds and decode to nothing otherwise. */
char *tf_tokenizer_decode (const TfTokenizer *tok, const int32_t *ids, size_t n, size_t *len);
/* The bytes of one token (not NUL-terminated), for streaming output. */
const uint8_t *tf_tokenizer_token_bytes (const TfTokenizer *tok, int32_t id, size_t *len);

G_END_DECLS
