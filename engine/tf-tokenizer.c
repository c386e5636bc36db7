/* tf-tokenizer.c: byte-level BPE (SPEC §6, issue 3).
 *
 * Text is cut into chunks (chunk_end); BPE runs inside each chunk. Training
 * counts distinct chunks once, then keeps a count for every adjacent pair,
 * the places each pair occurs (chunks' symbols are linked lists), and a
 * max-heap of pairs. A merge visits only the places of its pair and moves
 * the counts of the pairs beside them; heap entries whose count went stale
 * are refreshed when they reach the top (counts of old pairs only fall, so a
 * fresh top is the true maximum). Ties go to the smaller (left, right), so
 * training is deterministic.
 *
 * Encoding applies the merges of a chunk in rank order (the merged id is
 * the rank), left to right, which is what training did to the same chunk.
 * Short chunks rescan their pairs; long ones use a heap of candidate merges
 * over a linked list, so a megabyte of one letter is not quadratic. The
 * tokenizer is immutable once built, so any number of threads may encode
 * with it at once. */
#include "tf-tokenizer.h"

#include <json-glib/json-glib.h>

#include "tf-json.h"
#include <stdarg.h>
#include <string.h>

#define N_BYTE_TOKENS 256
/* JSON with more merges is refused before anything is allocated for it. */
#define MAX_MERGES 1000000
/* No token is longer (training skips such merges; loading refuses them)... */
#define TOKEN_MAX_BYTES TF_TOKEN_MAX_BYTES
/* ...and all tokens together take at most this much memory. */
#define TOKENS_MAX_TOTAL_BYTES (64u << 20)
/* json-glib 1.6 recurses once per level and has no limit of its own. */
#define JSON_MAX_DEPTH 16
/* Chunks up to this many bytes are merged by rescanning, longer ones by heap. */
#define SHORT_CHUNK 64
/* Positions in the encoder's heap keys take the low bits; ids the rest. */
#define POSITION_BITS 40

static const char *const special_texts[TF_N_SPECIAL] = {
  "<|bos|>", "<|eos|>", "<|boi|>", "<|eoi|>", "<|pad|>", "<|user|>", "<|assistant|>",
};

const char *
tf_special_text (TfSpecial special)
{
  g_return_val_if_fail ((unsigned) special < TF_N_SPECIAL, NULL);
  return special_texts[special];
}

/* ---- (left, right) → int32 hash map ------------------------------------ */

#define PAIR_EMPTY UINT64_MAX

typedef struct {
  uint64_t *keys;     /* PAIR_EMPTY where free */
  int32_t  *values;
  size_t    mask;     /* capacity − 1; the capacity is a power of two */
  size_t    n;
} PairMap;

static inline uint64_t
pair_key (int32_t left, int32_t right)
{
  return (uint64_t) (uint32_t) left << 32 | (uint32_t) right;
}

static inline size_t
pair_slot (uint64_t key, size_t mask)
{
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  return (size_t) key & mask;
}

static void
pair_map_init (PairMap *map, size_t expected)
{
  size_t capacity = 16;
  while (capacity < 2 * expected)
    capacity *= 2;
  map->keys = g_new (uint64_t, capacity);
  memset (map->keys, 0xff, capacity * sizeof *map->keys);
  map->values = g_new (int32_t, capacity);
  map->mask = capacity - 1;
  map->n = 0;
}

static void
pair_map_clear (PairMap *map)
{
  g_clear_pointer (&map->keys, g_free);
  g_clear_pointer (&map->values, g_free);
}

/* The value stored for (left, right), or −1. */
static inline int32_t
pair_map_get (const PairMap *map, int32_t left, int32_t right)
{
  uint64_t key = pair_key (left, right);
  for (size_t i = pair_slot (key, map->mask);; i = (i + 1) & map->mask)
    {
      if (map->keys[i] == key)
        return map->values[i];
      if (map->keys[i] == PAIR_EMPTY)
        return -1;
    }
}

static void
pair_map_put_key (PairMap *map, uint64_t key, int32_t value)
{
  size_t i = pair_slot (key, map->mask);
  while (map->keys[i] != key && map->keys[i] != PAIR_EMPTY)
    i = (i + 1) & map->mask;
  if (map->keys[i] == PAIR_EMPTY)
    map->n++;
  map->keys[i] = key;
  map->values[i] = value;
}

static void
pair_map_put (PairMap *map, int32_t left, int32_t right, int32_t value)
{
  if (2 * (map->n + 1) > map->mask + 1)
    {
      PairMap bigger;
      pair_map_init (&bigger, map->mask + 1);
      for (size_t i = 0; i <= map->mask; i++)
        if (map->keys[i] != PAIR_EMPTY)
          pair_map_put_key (&bigger, map->keys[i], map->values[i]);
      pair_map_clear (map);
      *map = bigger;
    }
  pair_map_put_key (map, pair_key (left, right), value);
}

/* ---- chunks ------------------------------------------------------------- */

enum { CLASS_LETTER, CLASS_DIGIT, CLASS_SPACE, CLASS_OTHER };

static inline int
byte_class (uint8_t c)
{
  if (c >= 0x80 || g_ascii_isalpha (c))
    return CLASS_LETTER;   /* bytes of multi-byte UTF-8 count as letters */
  if (g_ascii_isdigit (c))
    return CLASS_DIGIT;
  if (c == ' ' || (c >= '\t' && c <= '\r'))
    return CLASS_SPACE;
  return CLASS_OTHER;
}

/* The end of the chunk that starts at @start (< @len): an optional space,
 * then a run of one class. A run of whitespace leaves its last space to the
 * word after it ("a  b" → "a", " ", " b"), so words keep their usual token. */
static size_t
chunk_end (const uint8_t *p, size_t len, size_t start)
{
  size_t i = start;
  if (p[i] == ' ' && i + 1 < len && byte_class (p[i + 1]) != CLASS_SPACE)
    i++;
  int cls = byte_class (p[i]);
  size_t j = i + 1;
  while (j < len && byte_class (p[j]) == cls)
    j++;
  if (cls == CLASS_SPACE && j < len && j - start > 1 && p[j - 1] == ' ')
    j--;
  return j;
}

/* Replaces every (a, b) in @syms[from..n) by @merged, left to right, the
 * way both training and encoding apply one merge; returns the new length. */
static size_t
replace_pair (int32_t *syms, size_t n, size_t from, int32_t a, int32_t b, int32_t merged)
{
  size_t out = from;
  for (size_t i = from; i < n;)
    {
      if (i + 1 < n && syms[i] == a && syms[i + 1] == b)
        {
          syms[out++] = merged;
          i += 2;
        }
      else
        syms[out++] = syms[i++];
    }
  return out;
}

/* ---- the tokenizer ------------------------------------------------------ */

struct _TfTokenizer {
  int       n_merges;
  int32_t  *merges;          /* [n_merges][2]; merge k makes id 256 + k */
  int32_t   special_ids[TF_N_SPECIAL];
  int       vocab_size;      /* 256 + n_merges + TF_N_SPECIAL */
  uint8_t  *token_data;      /* the bytes of every token, back to back */
  size_t   *token_offset;    /* [vocab_size + 1] into token_data */
  PairMap   ranks;           /* (left, right) → merged id */
};

/* Builds a tokenizer from merges already known to be valid (ids earlier,
 * pairs distinct, lengths within bounds); takes @merges. */
static TfTokenizer *
tokenizer_new (int32_t *merges, int n_merges, const int32_t special_ids[TF_N_SPECIAL])
{
  TfTokenizer *tok = g_new0 (TfTokenizer, 1);
  int n_ordinary = N_BYTE_TOKENS + n_merges;

  tok->n_merges = n_merges;
  tok->merges = merges;
  tok->vocab_size = n_ordinary + TF_N_SPECIAL;
  memcpy (tok->special_ids, special_ids, sizeof tok->special_ids);

  /* Lengths first, so the bytes go into one block. */
  size_t *len = g_new (size_t, tok->vocab_size);
  size_t total = 0;
  for (int id = 0; id < tok->vocab_size; id++)
    {
      if (id < N_BYTE_TOKENS)
        len[id] = 1;
      else if (id < n_ordinary)
        len[id] = len[merges[2 * (id - N_BYTE_TOKENS)]] + len[merges[2 * (id - N_BYTE_TOKENS) + 1]];
      else
        len[id] = 0;
    }
  for (int s = 0; s < TF_N_SPECIAL; s++)
    len[special_ids[s]] = strlen (special_texts[s]);
  tok->token_offset = g_new (size_t, tok->vocab_size + 1);
  for (int id = 0; id < tok->vocab_size; id++)
    {
      tok->token_offset[id] = total;
      total += len[id];
    }
  tok->token_offset[tok->vocab_size] = total;
  g_free (len);

  tok->token_data = g_malloc (total + 1);
  for (int id = 0; id < N_BYTE_TOKENS; id++)
    tok->token_data[id] = (uint8_t) id;
  for (int k = 0; k < n_merges; k++)
    {
      int32_t a = merges[2 * k], b = merges[2 * k + 1];
      uint8_t *dst = tok->token_data + tok->token_offset[N_BYTE_TOKENS + k];
      size_t len_a = tok->token_offset[a + 1] - tok->token_offset[a];
      memcpy (dst, tok->token_data + tok->token_offset[a], len_a);
      memcpy (dst + len_a, tok->token_data + tok->token_offset[b],
              tok->token_offset[b + 1] - tok->token_offset[b]);
    }
  for (int s = 0; s < TF_N_SPECIAL; s++)
    memcpy (tok->token_data + tok->token_offset[special_ids[s]], special_texts[s],
            strlen (special_texts[s]));

  pair_map_init (&tok->ranks, (size_t) n_merges);
  for (int k = 0; k < n_merges; k++)
    pair_map_put (&tok->ranks, merges[2 * k], merges[2 * k + 1], N_BYTE_TOKENS + k);
  return tok;
}

void
tf_tokenizer_free (TfTokenizer *tok)
{
  if (tok == NULL)
    return;
  g_free (tok->merges);
  g_free (tok->token_data);
  g_free (tok->token_offset);
  pair_map_clear (&tok->ranks);
  g_free (tok);
}

int
tf_tokenizer_vocab_size (const TfTokenizer *tok)
{
  return tok->vocab_size;
}

int32_t
tf_tokenizer_special_id (const TfTokenizer *tok, TfSpecial special)
{
  g_return_val_if_fail ((unsigned) special < TF_N_SPECIAL, -1);
  return tok->special_ids[special];
}

/* ---- training ----------------------------------------------------------- */

/* A distinct chunk of the corpus and how often it occurs. */
typedef struct {
  const uint8_t *data;
  size_t         len;
  gint64         count;
} ChunkCount;

static guint
chunk_hash (gconstpointer p)
{
  const ChunkCount *c = p;
  guint32 h = 2166136261u;   /* FNV-1a */
  for (size_t i = 0; i < c->len; i++)
    h = (h ^ c->data[i]) * 16777619u;
  return h;
}

static gboolean
chunk_equal (gconstpointer a, gconstpointer b)
{
  const ChunkCount *x = a, *y = b;
  return x->len == y->len && memcmp (x->data, y->data, x->len) == 0;
}

typedef struct {
  int32_t  left, right;
  gint64   count;          /* occurrences in the corpus, now */
  int32_t *positions;      /* where it was made (some stale or repeated) */
  int32_t  n_positions, positions_capacity;
  guint    stamp;          /* the merge step that last listed it as new */
} TrainPair;

typedef struct {
  gint64  count;
  int32_t left, right;
  int32_t pair;
} HeapEntry;

/* Most frequent first; among equals the smaller (left, right). */
static inline gboolean
heap_entry_before (const HeapEntry *x, const HeapEntry *y)
{
  if (x->count != y->count)
    return x->count > y->count;
  if (x->left != y->left)
    return x->left < y->left;
  return x->right < y->right;
}

/* The distinct chunks' symbols lie back to back as doubly linked lists (a
 * merge unlinks its right symbol), so a merge touches only the places where
 * its pair occurs, however long the chunk. */
typedef struct {
  int32_t   *syms;           /* −1 once merged into its left neighbour */
  int32_t   *next, *prev;    /* −1 at the ends of a chunk */
  int32_t   *chunk_of;
  gint64    *chunk_count;

  TrainPair *pairs;
  int32_t    n_pairs, pairs_capacity;
  PairMap    pair_index;     /* (left, right) → index into pairs */

  HeapEntry *heap;
  size_t     heap_len, heap_capacity;

  int32_t   *new_pairs;      /* pairs made by the current step */
  int32_t    n_new_pairs, new_pairs_capacity;
} Trainer;

static void
heap_push (Trainer *t, const TrainPair *p, int32_t index)
{
  if (t->heap_len == t->heap_capacity)
    {
      t->heap_capacity = MAX (64, 2 * t->heap_capacity);
      t->heap = g_renew (HeapEntry, t->heap, t->heap_capacity);
    }
  HeapEntry e = { p->count, p->left, p->right, index };
  size_t i = t->heap_len++;
  while (i > 0 && heap_entry_before (&e, &t->heap[(i - 1) / 2]))
    {
      t->heap[i] = t->heap[(i - 1) / 2];
      i = (i - 1) / 2;
    }
  t->heap[i] = e;
}

static void
heap_sift_down (Trainer *t, size_t i)
{
  HeapEntry e = t->heap[i];
  for (;;)
    {
      size_t child = 2 * i + 1;
      if (child >= t->heap_len)
        break;
      if (child + 1 < t->heap_len && heap_entry_before (&t->heap[child + 1], &t->heap[child]))
        child++;
      if (!heap_entry_before (&t->heap[child], &e))
        break;
      t->heap[i] = t->heap[child];
      i = child;
    }
  t->heap[i] = e;
}

static HeapEntry
heap_pop (Trainer *t)
{
  HeapEntry top = t->heap[0];
  t->heap[0] = t->heap[--t->heap_len];
  if (t->heap_len > 0)
    heap_sift_down (t, 0);
  return top;
}

static int32_t
pair_find_or_add (Trainer *t, int32_t left, int32_t right)
{
  int32_t index = pair_map_get (&t->pair_index, left, right);
  if (index >= 0)
    return index;
  if (t->n_pairs == t->pairs_capacity)
    {
      t->pairs_capacity = MAX (1024, 2 * t->pairs_capacity);
      t->pairs = g_renew (TrainPair, t->pairs, t->pairs_capacity);
    }
  index = t->n_pairs++;
  t->pairs[index] = (TrainPair) { .left = left, .right = right };
  pair_map_put (&t->pair_index, left, right, index);
  return index;
}

/* Counts @weight more (left, right), made at @position. */
static int32_t
pair_add (Trainer *t, int32_t left, int32_t right, int32_t position, gint64 weight)
{
  int32_t index = pair_find_or_add (t, left, right);
  TrainPair *p = &t->pairs[index];
  p->count += weight;
  if (p->n_positions == p->positions_capacity)
    {
      p->positions_capacity = MAX (4, 2 * p->positions_capacity);
      p->positions = g_renew (int32_t, p->positions, p->positions_capacity);
    }
  p->positions[p->n_positions++] = position;
  return index;
}

/* Counts the distinct chunks of the corpus and links their symbols. */
static gboolean
trainer_init (Trainer *t, const char *const *texts, const size_t *lengths, int n_texts,
              GError **error)
{
  g_autoptr (GHashTable) chunks = g_hash_table_new_full (chunk_hash, chunk_equal, g_free, NULL);
  size_t total_syms = 0;
  int32_t n_chunks = 0;

  memset (t, 0, sizeof *t);
  for (int i = 0; i < n_texts; i++)
    {
      const uint8_t *p = (const uint8_t *) texts[i];
      size_t len = lengths != NULL ? lengths[i] : strlen (texts[i]);
      for (size_t start = 0, end; start < len; start = end)
        {
          end = chunk_end (p, len, start);
          ChunkCount probe = { p + start, end - start, 0 };
          ChunkCount *c = g_hash_table_lookup (chunks, &probe);
          if (c == NULL)
            {
              if (probe.len > 1)   /* one byte holds no pair */
                {
                  total_syms += probe.len;
                  n_chunks++;
                  if (total_syms > G_MAXINT32)
                    {
                      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                                   "tokenizer: the corpus has more than 2 GiB of distinct text");
                      return FALSE;
                    }
                }
              c = g_malloc (sizeof *c + probe.len);
              memcpy (c + 1, probe.data, probe.len);
              *c = (ChunkCount) { (const uint8_t *) (c + 1), probe.len, 0 };
              g_hash_table_add (chunks, c);
            }
          c->count++;
        }
    }

  size_t n = MAX (total_syms, 1);
  t->syms = g_new (int32_t, n);
  t->next = g_new (int32_t, n);
  t->prev = g_new (int32_t, n);
  t->chunk_of = g_new (int32_t, n);
  t->chunk_count = g_new (gint64, MAX (n_chunks, 1));
  pair_map_init (&t->pair_index, 4096);

  GHashTableIter iter;
  gpointer key;
  int32_t at = 0, chunk = 0;
  g_hash_table_iter_init (&iter, chunks);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      const ChunkCount *c = key;
      if (c->len < 2)
        continue;
      t->chunk_count[chunk] = c->count;
      for (int32_t i = 0; i < (int32_t) c->len; i++)
        {
          t->syms[at + i] = c->data[i];
          t->prev[at + i] = i > 0 ? at + i - 1 : -1;
          t->next[at + i] = i + 1 < (int32_t) c->len ? at + i + 1 : -1;
          t->chunk_of[at + i] = chunk;
          if (i > 0)
            pair_add (t, c->data[i - 1], c->data[i], at + i - 1, c->count);
        }
      at += (int32_t) c->len;
      chunk++;
    }

  t->heap_capacity = MAX ((size_t) t->n_pairs, 64);
  t->heap = g_new (HeapEntry, t->heap_capacity);
  for (int32_t i = 0; i < t->n_pairs; i++)
    t->heap[i] = (HeapEntry) { t->pairs[i].count, t->pairs[i].left, t->pairs[i].right, i };
  t->heap_len = (size_t) t->n_pairs;
  for (size_t i = t->heap_len / 2; i-- > 0;)
    heap_sift_down (t, i);
  return TRUE;
}

static void
trainer_clear (Trainer *t)
{
  for (int32_t i = 0; i < t->n_pairs; i++)
    g_free (t->pairs[i].positions);
  g_free (t->pairs);
  pair_map_clear (&t->pair_index);
  g_free (t->heap);
  g_free (t->new_pairs);
  g_free (t->syms);
  g_free (t->next);
  g_free (t->prev);
  g_free (t->chunk_of);
  g_free (t->chunk_count);
}

static int
compare_positions (const void *a, const void *b)
{
  int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
  return (x > y) - (x < y);
}

/* Notes a pair made by this step, to go onto the heap when it is done. */
static void
note_new_pair (Trainer *t, int32_t index, guint step)
{
  if (t->pairs[index].stamp == step)
    return;
  t->pairs[index].stamp = step;
  if (t->n_new_pairs == t->new_pairs_capacity)
    {
      t->new_pairs_capacity = MAX (256, 2 * t->new_pairs_capacity);
      t->new_pairs = g_renew (int32_t, t->new_pairs, t->new_pairs_capacity);
    }
  t->new_pairs[t->n_new_pairs++] = index;
}

/* Replaces every (a, b) by @merged, left to right within each chunk (the
 * positions in ascending order, which "a a a" needs), and moves the counts
 * of the neighbouring pairs: x a b y loses (x, a), (a, b), (b, y) and gains
 * (x, merged), (merged, y). Reading the neighbours as they are now makes
 * adjacent occurrences ("a b a b") come out right. */
static void
trainer_merge (Trainer *t, int32_t pair, int32_t merged, guint step)
{
  int32_t a = t->pairs[pair].left, b = t->pairs[pair].right;
  /* The list is ours now: no later merge makes this pair again (new pairs
   * all hold @merged). */
  int32_t *positions = t->pairs[pair].positions, n_positions = t->pairs[pair].n_positions;
  t->pairs[pair].positions = NULL;
  t->pairs[pair].n_positions = t->pairs[pair].positions_capacity = 0;
  t->n_new_pairs = 0;

  /* Usually in order already; sorting keeps "left to right" true regardless. */
  qsort (positions, (size_t) n_positions, sizeof *positions, compare_positions);
  for (int32_t k = 0; k < n_positions; k++)
    {
      int32_t i = positions[k], j = t->next[i];
      if (t->syms[i] != a || j < 0 || t->syms[j] != b)
        continue;   /* stale: an earlier merge took it */
      gint64 weight = t->chunk_count[t->chunk_of[i]];
      int32_t x = t->prev[i], y = t->next[j];

      t->pairs[pair].count -= weight;
      if (x >= 0)
        t->pairs[pair_find_or_add (t, t->syms[x], a)].count -= weight;
      if (y >= 0)
        t->pairs[pair_find_or_add (t, b, t->syms[y])].count -= weight;
      t->syms[i] = merged;
      t->syms[j] = -1;
      t->next[i] = y;
      if (y >= 0)
        t->prev[y] = i;
      if (x >= 0)
        note_new_pair (t, pair_add (t, t->syms[x], merged, x, weight), step);
      if (y >= 0)
        note_new_pair (t, pair_add (t, merged, t->syms[y], i, weight), step);
    }
  g_free (positions);

  for (int32_t k = 0; k < t->n_new_pairs; k++)
    if (t->pairs[t->new_pairs[k]].count > 0)
      heap_push (t, &t->pairs[t->new_pairs[k]], t->new_pairs[k]);
}

TfTokenizer *
tf_tokenizer_train (const char *const *texts, const size_t *lengths, int n_texts,
                    int vocab_size, GError **error)
{
  const int min_vocab = N_BYTE_TOKENS + TF_N_SPECIAL;
  const int max_vocab = N_BYTE_TOKENS + MAX_MERGES + TF_N_SPECIAL;

  if (vocab_size < min_vocab || vocab_size > max_vocab)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "tokenizer: vocabulary size %d is out of range, expected %d to %d",
                   vocab_size, min_vocab, max_vocab);
      return NULL;
    }
  if (n_texts < 0 || (n_texts > 0 && texts == NULL))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "tokenizer: %d texts given, expected a list of zero or more", n_texts);
      return NULL;
    }
  for (int i = 0; i < n_texts; i++)
    if (texts[i] == NULL && (lengths == NULL || lengths[i] > 0))
      {
        g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "tokenizer: text %d is NULL", i);
        return NULL;
      }

  Trainer t;
  if (!trainer_init (&t, texts, lengths, n_texts, error))
    {
      trainer_clear (&t);
      return NULL;
    }

  int target = vocab_size - min_vocab, n_merges = 0;
  int32_t *merges = g_new (int32_t, 2 * MAX (target, 1));
  size_t *token_len = g_new (size_t, N_BYTE_TOKENS + MAX (target, 1));
  size_t total_len = N_BYTE_TOKENS;
  for (int id = 0; id < N_BYTE_TOKENS; id++)
    token_len[id] = 1;

  while (n_merges < target && t.heap_len > 0)
    {
      HeapEntry top = heap_pop (&t);
      const TrainPair *p = &t.pairs[top.pair];
      if (top.count != p->count)
        {
          if (p->count > 0)
            heap_push (&t, p, top.pair);   /* stale: back in at its true count */
          continue;
        }
      if (top.count < 2)
        break;
      size_t len = token_len[top.left] + token_len[top.right];
      if (len > TOKEN_MAX_BYTES)
        continue;   /* never merged; nothing puts it back on the heap */
      if (total_len + len > TOKENS_MAX_TOTAL_BYTES)
        break;
      int32_t merged = N_BYTE_TOKENS + n_merges;
      merges[2 * n_merges] = top.left;
      merges[2 * n_merges + 1] = top.right;
      token_len[merged] = len;
      total_len += len;
      n_merges++;
      trainer_merge (&t, top.pair, merged, (guint) n_merges);
    }
  trainer_clear (&t);
  g_free (token_len);

  int32_t special_ids[TF_N_SPECIAL];
  for (int s = 0; s < TF_N_SPECIAL; s++)
    special_ids[s] = N_BYTE_TOKENS + n_merges + s;
  return tokenizer_new (merges, n_merges, special_ids);
}

/* ---- JSON --------------------------------------------------------------- */

char *
tf_tokenizer_to_json (const TfTokenizer *tok)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "byte-bpe");
  json_builder_set_member_name (b, "version");
  json_builder_add_int_value (b, 1);
  json_builder_set_member_name (b, "merges");
  json_builder_begin_array (b);
  for (int k = 0; k < tok->n_merges; k++)
    {
      json_builder_begin_array (b);
      json_builder_add_int_value (b, tok->merges[2 * k]);
      json_builder_add_int_value (b, tok->merges[2 * k + 1]);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "special");
  json_builder_begin_object (b);
  for (int s = 0; s < TF_N_SPECIAL; s++)
    {
      json_builder_set_member_name (b, special_texts[s]);
      json_builder_add_int_value (b, tok->special_ids[s]);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);

  return tf_json_builder_to_string (b);
}

static gboolean G_GNUC_PRINTF (3, 4)
json_fail (GError **error, const char *what, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *problem = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: tokenizer: %s", what, problem);
  return FALSE;
}

/* The deepest nesting of [ and { outside strings, stopping past @limit. */
static int
json_depth (const char *json, int limit)
{
  int depth = 0, deepest = 0;
  gboolean in_string = FALSE;
  for (const char *p = json; *p != '\0' && deepest <= limit; p++)
    {
      if (in_string)
        {
          if (*p == '\\' && p[1] != '\0')
            p++;
          else if (*p == '"')
            in_string = FALSE;
        }
      else if (*p == '"')
        in_string = TRUE;
      else if (*p == '[' || *p == '{')
        {
          depth++;
          deepest = MAX (deepest, depth);
        }
      else if (*p == ']' || *p == '}')
        depth--;
    }
  return deepest;
}

static gboolean
node_int (JsonNode *node, gint64 *out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return TRUE;
}

/* Checks @merges against everything tokenizer_new() relies on and fills
 * @out ([n][2]). */
static gboolean
parse_merges (JsonArray *array, int32_t *out, const char *what, GError **error)
{
  guint n = json_array_get_length (array);
  g_autofree size_t *token_len = g_new (size_t, N_BYTE_TOKENS + (size_t) n);
  size_t total_len = N_BYTE_TOKENS;
  PairMap seen;
  gboolean ok = TRUE;

  for (int id = 0; id < N_BYTE_TOKENS; id++)
    token_len[id] = 1;
  pair_map_init (&seen, n);
  for (guint k = 0; k < n && ok; k++)
    {
      JsonNode *node = json_array_get_element (array, k);
      JsonArray *pair = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      gint64 ids[2];
      if (pair == NULL || json_array_get_length (pair) != 2 ||
          !node_int (json_array_get_element (pair, 0), &ids[0]) ||
          !node_int (json_array_get_element (pair, 1), &ids[1]))
        {
          ok = json_fail (error, what, "merge %u is not a pair of integer ids", k);
          break;
        }
      for (int side = 0; side < 2 && ok; side++)
        if (ids[side] < 0 || ids[side] >= N_BYTE_TOKENS + (gint64) k)
          ok = json_fail (error, what, "merge %u refers to id %" G_GINT64_FORMAT
                          ", which does not exist yet", k, ids[side]);
      if (!ok)
        break;
      int32_t a = (int32_t) ids[0], b = (int32_t) ids[1];
      int32_t earlier = pair_map_get (&seen, a, b);
      if (earlier >= 0)
        {
          ok = json_fail (error, what, "merge %u repeats merge %d ([%d,%d])", k, earlier, a, b);
          break;
        }
      pair_map_put (&seen, a, b, (int32_t) k);
      size_t len = token_len[a] + token_len[b];
      if (len > TOKEN_MAX_BYTES)
        {
          ok = json_fail (error, what, "merge %u makes a token of %zu bytes, more than the limit of %d",
                          k, len, TOKEN_MAX_BYTES);
          break;
        }
      total_len += len;
      if (total_len > TOKENS_MAX_TOTAL_BYTES)
        {
          ok = json_fail (error, what, "the tokens up to merge %u take more than %u bytes",
                          k, TOKENS_MAX_TOTAL_BYTES);
          break;
        }
      token_len[N_BYTE_TOKENS + k] = len;
      out[2 * k] = a;
      out[2 * k + 1] = b;
    }
  pair_map_clear (&seen);
  return ok;
}

static gboolean
parse_specials (JsonObject *obj, int vocab_size, int32_t special_ids[TF_N_SPECIAL],
                const char *what, GError **error)
{
  int first = vocab_size - TF_N_SPECIAL;
  guint n = json_object_get_size (obj);
  if (n != TF_N_SPECIAL)
    return json_fail (error, what, "\"special\" has %u entries, expected the %d special tokens",
                      n, TF_N_SPECIAL);
  for (int s = 0; s < TF_N_SPECIAL; s++)
    {
      JsonNode *node = json_object_get_member (obj, special_texts[s]);
      gint64 id;
      if (node == NULL)
        return json_fail (error, what, "special token \"%s\" is missing", special_texts[s]);
      if (!node_int (node, &id))
        return json_fail (error, what, "special token \"%s\" has an id that is not an integer",
                          special_texts[s]);
      if (id < first || id >= vocab_size)
        return json_fail (error, what, "special token \"%s\" has id %" G_GINT64_FORMAT
                          ", expected one of the last seven ids, %d to %d",
                          special_texts[s], id, first, vocab_size - 1);
      special_ids[s] = (int32_t) id;
      for (int r = 0; r < s; r++)
        if (special_ids[r] == special_ids[s])
          return json_fail (error, what, "special tokens \"%s\" and \"%s\" share id %d",
                            special_texts[r], special_texts[s], special_ids[s]);
    }
  return TRUE;
}

TfTokenizer *
tf_tokenizer_from_json (const char *json, const char *what, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;

  if (what == NULL)
    what = "tokenizer JSON";
  if (json == NULL)
    {
      json_fail (error, what, "no JSON given");
      return NULL;
    }
  if (json_depth (json, JSON_MAX_DEPTH) > JSON_MAX_DEPTH)
    {
      json_fail (error, what, "JSON nested more than %d levels deep", JSON_MAX_DEPTH);
      return NULL;
    }
  if (!tf_json_parse (parser, json, -1, &local))
    {
      json_fail (error, what, "not valid JSON: %s", local->message);
      return NULL;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      json_fail (error, what, "not a JSON object");
      return NULL;
    }
  JsonObject *obj = json_node_get_object (root);

  JsonNode *type = json_object_get_member (obj, "type");
  if (type == NULL || !JSON_NODE_HOLDS_VALUE (type) ||
      json_node_get_value_type (type) != G_TYPE_STRING)
    {
      json_fail (error, what, "\"type\" is missing or not a string, expected \"byte-bpe\"");
      return NULL;
    }
  if (strcmp (json_node_get_string (type), "byte-bpe") != 0)
    {
      json_fail (error, what, "type \"%s\" is not supported, expected \"byte-bpe\"",
                 json_node_get_string (type));
      return NULL;
    }
  gint64 version;
  if (!node_int (json_object_get_member (obj, "version"), &version))
    {
      json_fail (error, what, "\"version\" is missing or not an integer, expected 1");
      return NULL;
    }
  if (version != 1)
    {
      json_fail (error, what, "version %" G_GINT64_FORMAT " is not supported, expected 1", version);
      return NULL;
    }

  JsonNode *merges_node = json_object_get_member (obj, "merges");
  if (merges_node == NULL || !JSON_NODE_HOLDS_ARRAY (merges_node))
    {
      json_fail (error, what, "\"merges\" is missing or not an array");
      return NULL;
    }
  JsonArray *merges_array = json_node_get_array (merges_node);
  guint n_merges = json_array_get_length (merges_array);
  if (n_merges > MAX_MERGES)
    {
      json_fail (error, what, "%u merges, more than the limit of %d", n_merges, MAX_MERGES);
      return NULL;
    }
  g_autofree int32_t *merges = g_new (int32_t, 2 * MAX (n_merges, 1));
  if (!parse_merges (merges_array, merges, what, error))
    return NULL;

  JsonNode *special_node = json_object_get_member (obj, "special");
  if (special_node == NULL || !JSON_NODE_HOLDS_OBJECT (special_node))
    {
      json_fail (error, what, "\"special\" is missing or not an object");
      return NULL;
    }
  int32_t special_ids[TF_N_SPECIAL];
  int vocab_size = N_BYTE_TOKENS + (int) n_merges + TF_N_SPECIAL;
  if (!parse_specials (json_node_get_object (special_node), vocab_size, special_ids, what, error))
    return NULL;

  return tokenizer_new (g_steal_pointer (&merges), (int) n_merges, special_ids);
}

/* ---- config ------------------------------------------------------------- */

static int *
config_special_field (TfConfig *config, TfSpecial s)
{
  switch (s)
    {
    case TF_SPECIAL_BOS: return &config->bos_id;
    case TF_SPECIAL_EOS: return &config->eos_id;
    case TF_SPECIAL_BOI: return &config->boi_id;
    case TF_SPECIAL_EOI: return &config->eoi_id;
    case TF_SPECIAL_PAD: return &config->pad_id;
    case TF_SPECIAL_USER: return &config->user_id;
    case TF_SPECIAL_ASSISTANT:
    case TF_N_SPECIAL:
    default: return &config->assistant_id;
    }
}

static const char *const config_special_names[TF_N_SPECIAL] = {
  "bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id", "assistant_id",
};

void
tf_tokenizer_apply_to_config (const TfTokenizer *tok, TfConfig *config)
{
  config->vocab_size = tok->vocab_size;
  for (int s = 0; s < TF_N_SPECIAL; s++)
    *config_special_field (config, (TfSpecial) s) = tok->special_ids[s];
}

gboolean
tf_tokenizer_matches_config (const TfTokenizer *tok, const TfConfig *config,
                             const char *what, GError **error)
{
  if (config->vocab_size != tok->vocab_size)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_CONFIG,
                   "%s: config has vocab_size %d but the tokenizer has %d tokens",
                   what, config->vocab_size, tok->vocab_size);
      return FALSE;
    }
  for (int s = 0; s < TF_N_SPECIAL; s++)
    {
      int id = *config_special_field ((TfConfig *) config, (TfSpecial) s);
      if (id != tok->special_ids[s])
        {
          g_set_error (error, TF_ERROR, TF_ERROR_CONFIG,
                       "%s: config has %s %d but the tokenizer's %s is %d",
                       what, config_special_names[s], id, special_texts[s], tok->special_ids[s]);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- encoding ----------------------------------------------------------- */

/* Merges a short chunk by finding its lowest-ranked pair again after every
 * merge; returns the new length. */
static size_t
merge_short (const TfTokenizer *tok, int32_t *syms, size_t n)
{
  while (n > 1)
    {
      int32_t best = G_MAXINT32;
      size_t best_at = 0;
      for (size_t i = 0; i + 1 < n; i++)
        {
          int32_t id = pair_map_get (&tok->ranks, syms[i], syms[i + 1]);
          if (id >= 0 && id < best)
            {
              best = id;
              best_at = i;
            }
        }
      if (best == G_MAXINT32)
        break;
      const int32_t *pair = tok->merges + 2 * (best - N_BYTE_TOKENS);
      n = replace_pair (syms, n, best_at, pair[0], pair[1], best);
    }
  return n;
}

static inline void
candidate_push (uint64_t *heap, size_t *len, uint64_t key)
{
  size_t i = (*len)++;
  while (i > 0 && key < heap[(i - 1) / 2])
    {
      heap[i] = heap[(i - 1) / 2];
      i = (i - 1) / 2;
    }
  heap[i] = key;
}

static inline uint64_t
candidate_pop (uint64_t *heap, size_t *len)
{
  uint64_t top = heap[0], last = heap[--*len];
  size_t i = 0;
  for (;;)
    {
      size_t child = 2 * i + 1;
      if (child >= *len)
        break;
      if (child + 1 < *len && heap[child + 1] < heap[child])
        child++;
      if (last <= heap[child])
        break;
      heap[i] = heap[child];
      i = child;
    }
  if (*len > 0)
    heap[i] = last;
  return top;
}

/* Merges a long chunk: candidate merges wait in a min-heap keyed by
 * (merged id, position), so merges happen in rank order and, within a rank,
 * left to right; a candidate whose symbols changed since is skipped. Merging
 * only makes pairs of higher rank, so nothing is ever done out of order. */
static size_t
merge_long (const TfTokenizer *tok, int32_t *syms, size_t n)
{
  const size_t none = SIZE_MAX;
  const uint64_t position_mask = ((uint64_t) 1 << POSITION_BITS) - 1;
  size_t *next = g_new (size_t, n), *prev = g_new (size_t, n);
  /* n − 1 initial candidates, at most two more per merge. */
  uint64_t *heap = g_new (uint64_t, 3 * n);
  size_t heap_len = 0;

  g_assert ((uint64_t) n <= position_mask);
  for (size_t i = 0; i < n; i++)
    {
      prev[i] = i > 0 ? i - 1 : none;
      next[i] = i + 1 < n ? i + 1 : none;
      int32_t id = i + 1 < n ? pair_map_get (&tok->ranks, syms[i], syms[i + 1]) : -1;
      if (id >= 0)
        candidate_push (heap, &heap_len, (uint64_t) id << POSITION_BITS | i);
    }
  while (heap_len > 0)
    {
      uint64_t key = candidate_pop (heap, &heap_len);
      int32_t id = (int32_t) (key >> POSITION_BITS);
      size_t i = (size_t) (key & position_mask), j = next[i];
      if (syms[i] < 0 || j == none || pair_map_get (&tok->ranks, syms[i], syms[j]) != id)
        continue;
      syms[i] = id;
      syms[j] = -1;
      next[i] = next[j];
      if (next[i] != none)
        prev[next[i]] = i;
      if (prev[i] != none)
        {
          int32_t left = pair_map_get (&tok->ranks, syms[prev[i]], id);
          if (left >= 0)
            candidate_push (heap, &heap_len, (uint64_t) left << POSITION_BITS | prev[i]);
        }
      if (next[i] != none)
        {
          int32_t right = pair_map_get (&tok->ranks, id, syms[next[i]]);
          if (right >= 0)
            candidate_push (heap, &heap_len, (uint64_t) right << POSITION_BITS | i);
        }
    }
  size_t out = 0;
  for (size_t i = 0; i != none; i = next[i])   /* the first symbol never dies */
    syms[out++] = syms[i];
  g_free (next);
  g_free (prev);
  g_free (heap);
  return out;
}

size_t
tf_tokenizer_encode_append (const TfTokenizer *tok, const char *text, size_t len, GArray *out)
{
  g_return_val_if_fail (tok != NULL && out != NULL, 0);
  g_return_val_if_fail (g_array_get_element_size (out) == sizeof (int32_t), 0);
  g_return_val_if_fail (text != NULL || len == 0, 0);

  const uint8_t *p = (const uint8_t *) text;
  guint before = out->len;
  int32_t local[SHORT_CHUNK];
  for (size_t start = 0, end; start < len; start = end)
    {
      end = chunk_end (p, len, start);
      size_t n = end - start;
      int32_t *syms = n <= SHORT_CHUNK ? local : g_new (int32_t, n);
      for (size_t i = 0; i < n; i++)
        syms[i] = p[start + i];
      n = n <= SHORT_CHUNK ? merge_short (tok, syms, n) : merge_long (tok, syms, n);
      g_array_append_vals (out, syms, (guint) n);
      if (syms != local)
        g_free (syms);
    }
  return out->len - before;
}

int32_t *
tf_tokenizer_encode (const TfTokenizer *tok, const char *text, size_t len, size_t *n_tokens)
{
  /* Reserving at least one element makes the stolen data non-NULL. */
  GArray *out = g_array_sized_new (FALSE, FALSE, sizeof (int32_t), (guint) MIN (len / 3 + 1, 1u << 20));
  tf_tokenizer_encode_append (tok, text, len, out);
  gsize n = 0;
  int32_t *ids = g_array_steal (out, &n);
  g_array_unref (out);
  if (n_tokens != NULL)
    *n_tokens = n;
  return ids;
}

/* ---- decoding ----------------------------------------------------------- */

const uint8_t *
tf_tokenizer_token_bytes (const TfTokenizer *tok, int32_t id, size_t *len)
{
  *len = 0;
  g_return_val_if_fail (id >= 0 && id < tok->vocab_size, NULL);
  *len = tok->token_offset[id + 1] - tok->token_offset[id];
  return tok->token_data + tok->token_offset[id];
}

char *
tf_tokenizer_decode (const TfTokenizer *tok, const int32_t *ids, size_t n, size_t *len)
{
  size_t total = 0;
  gboolean bad = FALSE;
  for (size_t i = 0; i < n; i++)
    {
      if (ids[i] < 0 || ids[i] >= tok->vocab_size)
        {
          bad = TRUE;
          continue;
        }
      total += tok->token_offset[ids[i] + 1] - tok->token_offset[ids[i]];
    }
#ifdef NDEBUG
  (void) bad;
#else
  if (bad)
    g_critical ("tf_tokenizer_decode: token id out of range (vocabulary of %d)", tok->vocab_size);
#endif
  char *text = g_malloc (total + 1), *at = text;
  for (size_t i = 0; i < n; i++)
    {
      if (ids[i] < 0 || ids[i] >= tok->vocab_size)
        continue;
      size_t l = tok->token_offset[ids[i] + 1] - tok->token_offset[ids[i]];
      memcpy (at, tok->token_data + tok->token_offset[ids[i]], l);
      at += l;
    }
  *at = '\0';
  if (len != NULL)
    *len = total;
  return text;
}
