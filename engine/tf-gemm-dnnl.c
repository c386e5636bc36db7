/* tf-gemm-dnnl.c: the oneDNN backend of tf-gemm.h (Debian's libdnnl, 2.6).
 *
 * Each part of a product is one oneDNN matmul: src op(A) [m, K], weights
 * op(B) [K, n] and dst C [m, n], all described by strides, so transposes
 * and leading dimensions need no copies; alpha is an output scale and
 * beta a sum post-op (C is accumulated into, as BLAS does). Operands are
 * f32, or bf16 (converted once by tf_gemm_prepare) with an f32 destination,
 * which oneDNN accumulates in f32.
 *
 * Creating a primitive costs far more than running a small one, so each
 * (shape, strides, transposes, alpha, beta, data type) gets one, made on
 * first use and kept for the life of the process; parts of a product run
 * on several threads at once, each with its own scratchpad and stream.
 *
 * Threads: a part is one thread's work (tf-gemm.h); oneDNN, built with
 * OpenMP, would otherwise spread it over omp_get_max_threads() threads, so
 * each part runs, and each primitive is created, with that set to 1. The
 * result then depends on how the engine cuts C, not on the thread count. */
#include "tf-gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
  int   backend, ta, tb, m, n, k, lda, ldb, ldc;
  float alpha, beta;
} PrimitiveKey;

typedef struct {
  dnnl_primitive_t primitive;
  size_t           scratchpad;   /* bytes */
  char            *impl;         /* oneDNN's name of the kernel it chose */
} Primitive;

static GMutex cache_lock;
static GHashTable *cache;        /* PrimitiveKey → Primitive, never freed */
static dnnl_engine_t engine;

static guint
key_hash (gconstpointer p)
{
  const PrimitiveKey *k = p;
  guint h = 2166136261u;
  const guchar *bytes = p;
  for (size_t i = 0; i < sizeof *k; i++)
    h = (h ^ bytes[i]) * 16777619u;
  return h;
}

static gboolean
key_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, sizeof (PrimitiveKey)) == 0;
}

static void
check (dnnl_status_t status, const char *what)
{
  if (status != dnnl_success)
    g_error ("oneDNN: %s failed (status %d)", what, (int) status);
}

static dnnl_engine_t
get_engine (void)
{
  static gsize once;
  if (g_once_init_enter (&once))
    {
      check (dnnl_engine_create (&engine, dnnl_cpu, 0), "creating the CPU engine");
      cache = g_hash_table_new (key_hash, key_equal);
      g_once_init_leave (&once, 1);
    }
  return engine;
}

/* The matmul for @key, or NULL when oneDNN has none (bf16 on a CPU without
 * it). */
static dnnl_primitive_desc_t
create_desc (const PrimitiveKey *key)
{
  const dnnl_data_type_t in = key->backend == TF_GEMM_DNNL_BF16 ? dnnl_bf16 : dnnl_f32;
  const dnnl_dims_t src_dims = { key->m, key->k }, wei_dims = { key->k, key->n };
  const dnnl_dims_t dst_dims = { key->m, key->n };
  const dnnl_dims_t src_strides = { key->ta == CblasNoTrans ? key->lda : 1,
                                    key->ta == CblasNoTrans ? 1 : key->lda };
  const dnnl_dims_t wei_strides = { key->tb == CblasNoTrans ? key->ldb : 1,
                                    key->tb == CblasNoTrans ? 1 : key->ldb };
  const dnnl_dims_t dst_strides = { key->ldc, 1 };
  dnnl_memory_desc_t src, wei, dst;
  check (dnnl_memory_desc_init_by_strides (&src, 2, src_dims, in, src_strides), "src desc");
  check (dnnl_memory_desc_init_by_strides (&wei, 2, wei_dims, in, wei_strides), "weights desc");
  check (dnnl_memory_desc_init_by_strides (&dst, 2, dst_dims, dnnl_f32, dst_strides),
         "dst desc");
  dnnl_matmul_desc_t desc;
  check (dnnl_matmul_desc_init (&desc, &src, &wei, NULL, &dst), "matmul desc");

  dnnl_primitive_attr_t attr;
  check (dnnl_primitive_attr_create (&attr), "attributes");
  check (dnnl_primitive_attr_set_scratchpad_mode (attr, dnnl_scratchpad_mode_user),
         "scratchpad mode");
  if (key->alpha != 1.0f)
    check (dnnl_primitive_attr_set_output_scales (attr, 1, 0, &key->alpha), "output scale");
  dnnl_post_ops_t post_ops = NULL;
  if (key->beta != 0.0f)
    {
      check (dnnl_post_ops_create (&post_ops), "post-ops");
      check (dnnl_post_ops_append_sum (post_ops, key->beta), "sum post-op");
      check (dnnl_primitive_attr_set_post_ops (attr, post_ops), "setting post-ops");
    }
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_primitive_desc_create (&pd, &desc, attr, get_engine (), NULL) != dnnl_success)
    pd = NULL;
  if (post_ops != NULL)
    dnnl_post_ops_destroy (post_ops);
  dnnl_primitive_attr_destroy (attr);
  return pd;
}

/* With one OpenMP thread, as a part runs (see the top of the file). */
static const Primitive *
get_primitive (const PrimitiveKey *key)
{
  get_engine ();
  g_mutex_lock (&cache_lock);
  Primitive *p = g_hash_table_lookup (cache, key);
  if (p == NULL)
    {
      dnnl_primitive_desc_t pd = create_desc (key);
      if (pd == NULL)
        g_error ("oneDNN has no %s matmul for [%d×%d]·[%d×%d] on this CPU",
                 key->backend == TF_GEMM_DNNL_BF16 ? "bf16" : "f32", key->m, key->k, key->k,
                 key->n);
      p = g_new0 (Primitive, 1);
      const char *impl = NULL;
      dnnl_primitive_desc_query (pd, dnnl_query_impl_info_str, 0, &impl);
      p->impl = g_strdup (impl != NULL ? impl : "?");
      p->scratchpad = dnnl_memory_desc_get_size (
        dnnl_primitive_desc_query_md (pd, dnnl_query_scratchpad_md, 0));
      check (dnnl_primitive_create (&p->primitive, pd), "creating a matmul");
      dnnl_primitive_desc_destroy (pd);
      g_hash_table_insert (cache, g_memdup2 (key, sizeof *key), p);
    }
  g_mutex_unlock (&cache_lock);
  return p;
}

static PrimitiveKey
part_key (const TfGemm *g, int m, int n)
{
  PrimitiveKey key;   /* hashed as bytes: ints and floats, no padding */
  key.backend = g->backend;
  key.ta = g->ta;
  key.tb = g->tb;
  key.m = m;
  key.n = n;
  key.k = g->K;
  key.lda = g->lda;
  key.ldb = g->ldb;
  key.ldc = g->ldc;
  key.alpha = g->alpha;
  key.beta = g->beta;
  return key;
}

void
tf_gemm_dnnl_part (const TfGemm *g, gboolean rows, int s, int e)
{
  const size_t size = g->backend == TF_GEMM_DNNL_BF16 ? 2 : 4;
  const char *a = g->a, *b = g->b;
  float *c = g->c;
  int m = g->M, n = g->N;
  if (rows)
    {
      m = e - s;
      a += (g->ta == CblasNoTrans ? (size_t) s * g->lda : (size_t) s) * size;
      c += (size_t) s * g->ldc;
    }
  else
    {
      n = e - s;
      b += (g->tb == CblasNoTrans ? (size_t) s : (size_t) s * g->ldb) * size;
      c += s;
    }
#ifdef _OPENMP
  const int threads = omp_get_max_threads ();
  omp_set_num_threads (1);
#endif
  const PrimitiveKey key = part_key (g, m, n);
  const Primitive *p = get_primitive (&key);

  const_dnnl_primitive_desc_t pd;
  check (dnnl_primitive_get_primitive_desc (p->primitive, &pd), "its desc");
  dnnl_memory_t mem[4] = { NULL };
  const dnnl_query_t queries[3] = { dnnl_query_src_md, dnnl_query_weights_md,
                                    dnnl_query_dst_md };
  void *handles[3] = { (void *) a, (void *) b, c };
  void *scratchpad = p->scratchpad > 0 ? g_malloc (p->scratchpad) : NULL;
  for (int i = 0; i < 3; i++)
    check (dnnl_memory_create (&mem[i], dnnl_primitive_desc_query_md (pd, queries[i], 0),
                               engine, handles[i]), "memory");
  check (dnnl_memory_create (&mem[3], dnnl_primitive_desc_query_md (pd, dnnl_query_scratchpad_md,
                                                                    0),
                             engine, scratchpad), "scratchpad memory");
  const dnnl_exec_arg_t args[4] = {
    { DNNL_ARG_SRC, mem[0] }, { DNNL_ARG_WEIGHTS, mem[1] }, { DNNL_ARG_DST, mem[2] },
    { DNNL_ARG_SCRATCHPAD, mem[3] },
  };
  dnnl_stream_t stream;
  check (dnnl_stream_create (&stream, engine, dnnl_stream_default_flags), "stream");
  check (dnnl_primitive_execute (p->primitive, stream, 4, args), "matmul");
  check (dnnl_stream_wait (stream), "waiting for the matmul");
  dnnl_stream_destroy (stream);
  for (int i = 0; i < 4; i++)
    dnnl_memory_destroy (mem[i]);
  g_free (scratchpad);
#ifdef _OPENMP
  omp_set_num_threads (threads);
#endif
}

gboolean
tf_gemm_dnnl_bf16_native (void)
{
  static gsize native;   /* 1: no, 2: yes */
  if (g_once_init_enter (&native))
    {
      const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa ();
      gboolean yes = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
      if (yes)   /* and oneDNN has the matmul: ask for one */
        {
          const PrimitiveKey key = { .backend = TF_GEMM_DNNL_BF16, .ta = CblasNoTrans,
                                 .tb = CblasTrans, .m = 32, .n = 32, .k = 32, .lda = 32,
                                 .ldb = 32, .ldc = 32, .alpha = 1, .beta = 0 };
          get_engine ();
          dnnl_primitive_desc_t pd = create_desc (&key);
          yes = pd != NULL;
          if (pd != NULL)
            dnnl_primitive_desc_destroy (pd);
        }
      g_once_init_leave (&native, yes ? 2 : 1);
    }
  return native == 2;
}

char *
tf_gemm_dnnl_kernel_name (TfGemmBackend backend, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M,
                          int N, int K)
{
  TfGemm g = { .backend = backend, .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = 1,
               .beta = 0, .lda = ta == CblasNoTrans ? K : M, .ldb = tb == CblasNoTrans ? N : K,
               .ldc = N };
  if (backend == TF_GEMM_DNNL_BF16 && !tf_gemm_dnnl_bf16_native ())
    return g_strdup ("none: oneDNN has no bf16 matmul on this CPU");
#ifdef _OPENMP
  const int threads = omp_get_max_threads ();
  omp_set_num_threads (1);
#endif
  const PrimitiveKey key = part_key (&g, M, N);
  char *name = g_strdup (get_primitive (&key)->impl);
#ifdef _OPENMP
  omp_set_num_threads (threads);
#endif
  return name;
}
