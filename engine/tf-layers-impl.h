/* tf-layers-impl.h: kernel bodies, included by tf-layers.c once for float and
 * once for double. REAL is the element type, FN(x) names the function, GEMM
 * and GEMV are the matching BLAS routines (attention's small per-head
 * products and decoding's matrix–vector products), and GEMM_T with
 * GEMM_PREPARE, GEMM_PART and GEMM_FINISH the products of tf-gemm.h (the
 * float build's run on the calling thread's backend: fp32, bf16, OpenBLAS
 * or oneDNN). See tf-layers.h for the contracts. */

/* One row of C: c[n0..n1) = alpha·a·op(B)[:, n0..n1) + beta·c, as a
 * matrix–vector product (BLAS's gemm would copy all of B into its packed
 * layout first, tripling the memory traffic that decoding is bound by). */
static void
FN (gemv_band) (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int n0, int n1, int K, REAL alpha,
                const REAL *A, int lda, const REAL *B, int ldb, REAL beta, REAL *C)
{
  const int inc = ta == CblasNoTrans ? 1 : lda;
  if (beta == 0)   /* c may hold anything, NaN included, that 0·c must not keep */
    memset (C + n0, 0, sizeof (REAL) * (n1 - n0));
  if (tb == CblasTrans)   /* B is [N, K]: c = B·a */
    GEMV (CblasRowMajor, CblasNoTrans, n1 - n0, K, alpha, B + (size_t) n0 * ldb, ldb,
          A, inc, beta, C + n0, 1);
  else                    /* B is [K, N]: c = Bᵀ·a */
    GEMV (CblasRowMajor, CblasTrans, K, n1 - n0, alpha, B + n0, ldb, A, inc, beta, C + n0, 1);
}

/* C = alpha·op(A)·op(B) + beta·C, row-major, C [M, N]. A large product is
 * cut into bands of C's rows (or columns, when there are more of them),
 * each a one-thread call of the backend, shared among the OpenMP threads:
 * the engine's own threads do all the work, so the library's threads never
 * compete with them. The bands depend on the machine's core count only,
 * never on how many threads run now, so the result is the same bits
 * whatever the threads (tf-threads.h varies them with the machine's load).
 * A single row is a matrix–vector product: in bf16 when the weights are
 * packed in bf16 (a generator's, on oneDNN bf16: decoding is bound by
 * reading them), in fp32 otherwise. */
static void
FN (gemm) (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, REAL alpha,
           const REAL *A, int lda, const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
  int bands = 1, threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel () && (double) M * N * K >= 32768.0)
    {
      bands = omp_get_num_procs ();
      threads = MIN (bands, omp_get_max_threads ());
    }
#endif
  if (M == 1)
    {
      const int band = ((N + bands - 1) / bands + 15) / 16 * 16;
#ifdef GEMV_BF16
      /* weights packed in bf16 (tf-gemm.h): half the bytes to read */
      const uint16_t *packed = tb == CblasTrans ? tf_gemm_packed_rows (B, N, K, ldb) : NULL;
#endif
      TF_TSAN_FORK (team);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
      for (int t = 0; t < bands; t++)
        {
          TF_TSAN_MEMBER (team);
          if (t * band >= N)
            continue;
#ifdef GEMV_BF16
          if (packed != NULL)
            {
              tf_gemv_bf16 (t * band, MIN (N, (t + 1) * band), K, alpha, A,
                            ta == CblasNoTrans ? 1 : lda, packed, ldb, beta, C);
              continue;
            }
#endif
          FN (gemv_band) (ta, tb, t * band, MIN (N, (t + 1) * band), K, alpha, A, lda, B,
                          ldb, beta, C);
        }
      TF_TSAN_JOIN (team);
      return;
    }
  GEMM_T g;
  GEMM_PREPARE (&g, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (bands <= 1 || (M < 16 && N < 16))
    {
      GEMM_PART (&g, TRUE, 0, M);
      GEMM_FINISH (&g);
      return;
    }
  const gboolean rows = M >= N;
  const int len = rows ? M : N;
  const int band = ((len + bands - 1) / bands + 7) / 8 * 8;
  TF_TSAN_FORK (team);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int t = 0; t < bands; t++)
    {
      TF_TSAN_MEMBER (team);
      GEMM_PART (&g, rows, t * band, MIN (len, (t + 1) * band));
    }
  TF_TSAN_JOIN (team);
  GEMM_FINISH (&g);
}

void
FN (tf_linear_forward) (REAL *out, const REAL *in, const REAL *w, const REAL *b,
                        int n, int in_dim, int out_dim)
{
  if (n <= 0)
    return;
  FN (gemm) (CblasNoTrans, CblasTrans, n, out_dim, in_dim,
             1.0, in, in_dim, w, in_dim, 0.0, out, out_dim);
  if (b != NULL)
    for (int r = 0; r < n; r++)
      {
        REAL *row = out + (size_t) r * out_dim;
        for (int o = 0; o < out_dim; o++)
          row[o] += b[o];
      }
}

void
FN (tf_linear_forward_add) (REAL *out, const REAL *in, const REAL *w, int n, int in_dim,
                            int out_dim)
{
  if (n > 0)
    FN (gemm) (CblasNoTrans, CblasTrans, n, out_dim, in_dim,
               1.0, in, in_dim, w, in_dim, 1.0, out, out_dim);
}

void
FN (tf_linear_backward) (REAL *d_in, REAL *d_w, REAL *d_b, const REAL *d_out,
                         const REAL *in, const REAL *w, int n, int in_dim, int out_dim)
{
  if (n <= 0)
    return;
  if (d_in != NULL)   /* d_in += d_out · W */
    FN (gemm) (CblasNoTrans, CblasNoTrans, n, in_dim, out_dim,
               1.0, d_out, out_dim, w, in_dim, 1.0, d_in, in_dim);
  if (d_w != NULL)    /* d_W += d_outᵀ · in */
    FN (gemm) (CblasTrans, CblasNoTrans, out_dim, in_dim, n,
               1.0, d_out, out_dim, in, in_dim, 1.0, d_w, in_dim);
  if (d_b != NULL)
    for (int r = 0; r < n; r++)
      {
        const REAL *row = d_out + (size_t) r * out_dim;
        for (int o = 0; o < out_dim; o++)
          d_b[o] += row[o];
      }
}

void
FN (tf_embedding_forward) (REAL *out, const int32_t *ids, const REAL *table, int n, int dim)
{
  for (int r = 0; r < n; r++)
    memcpy (out + (size_t) r * dim, table + (size_t) ids[r] * dim, sizeof (REAL) * dim);
}

void
FN (tf_embedding_backward) (REAL *d_table, const REAL *d_out, const int32_t *ids,
                            int n, int dim)
{
  /* Serial: two rows may share an id. */
  for (int r = 0; r < n; r++)
    {
      REAL *dst = d_table + (size_t) ids[r] * dim;
      const REAL *src = d_out + (size_t) r * dim;
      for (int k = 0; k < dim; k++)
        dst[k] += src[k];
    }
}

/* Maxima and sums over a row in TF_LANES fixed lanes, then the lanes in
 * order. A plain running sum is one chain of dependent additions that no
 * compiler may reorder, so its loop (and the exponentials in it) ran one
 * element at a time; in lanes it vectorises. The order, so the bits,
 * depends on n only, never on the machine or the threads. */
#ifndef TF_LANES
#define TF_LANES 16
#endif

static inline REAL
FN (row_max) (const REAL *x, int n)
{
  REAL m[TF_LANES];
  for (int l = 0; l < TF_LANES; l++)
    m[l] = -INFINITY;
  int j = 0;
  for (; j + TF_LANES <= n; j += TF_LANES)
    for (int l = 0; l < TF_LANES; l++)
      m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  for (; j < n; j++)
    m[0] = x[j] > m[0] ? x[j] : m[0];
  REAL max = m[0];
  for (int l = 1; l < TF_LANES; l++)
    max = m[l] > max ? m[l] : max;
  return max;
}

/* Σ_j exp(x_j − shift) in double; out_j = exp(x_j − shift) when @out is not
 * NULL (it may be @x). */
static inline double
FN (row_sum_exp) (REAL *out, const REAL *x, REAL shift, int n)
{
  double s[TF_LANES] = { 0 };
  int j = 0;
  if (out != NULL)
    for (; j + TF_LANES <= n; j += TF_LANES)
      for (int l = 0; l < TF_LANES; l++)
        {
          out[j + l] = EXP (x[j + l] - shift);
          s[l] += out[j + l];
        }
  else
    for (; j + TF_LANES <= n; j += TF_LANES)
      for (int l = 0; l < TF_LANES; l++)
        s[l] += EXP (x[j + l] - shift);
  for (; j < n; j++)
    {
      const REAL e = EXP (x[j] - shift);
      if (out != NULL)
        out[j] = e;
      s[0] += e;
    }
  double sum = 0;
  for (int l = 0; l < TF_LANES; l++)
    sum += s[l];
  return sum;
}

/* Σ_j a_j·b_j (·c_j when @c is not NULL), each product in double. */
static inline double
FN (row_dot) (const REAL *a, const REAL *b, const REAL *c, int n)
{
  double s[TF_LANES] = { 0 };
  int j = 0;
  if (c != NULL)
    for (; j + TF_LANES <= n; j += TF_LANES)
      for (int l = 0; l < TF_LANES; l++)
        s[l] += (double) a[j + l] * b[j + l] * c[j + l];
  else
    for (; j + TF_LANES <= n; j += TF_LANES)
      for (int l = 0; l < TF_LANES; l++)
        s[l] += (double) a[j + l] * b[j + l];
  for (; j < n; j++)
    s[0] += c != NULL ? (double) a[j] * b[j] * c[j] : (double) a[j] * b[j];
  double sum = 0;
  for (int l = 0; l < TF_LANES; l++)
    sum += s[l];
  return sum;
}

TF_VECTOR_CLONES void
FN (tf_rmsnorm_forward) (REAL *out, REAL *rstd, const REAL *in, const REAL *w,
                         int n, int dim, double eps)
{
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if ((double) n * dim >= 65536)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      const REAL *x = in + (size_t) r * dim;
      REAL *y = out + (size_t) r * dim;
      const double ss = FN (row_dot) (x, x, NULL, dim);
      REAL s = (REAL) (1.0 / sqrt (ss / dim + eps));
      rstd[r] = s;
      for (int k = 0; k < dim; k++)
        y[k] = x[k] * s * w[k];
    }
  TF_TSAN_JOIN (team);
}

TF_VECTOR_CLONES void
FN (tf_rmsnorm_backward) (REAL *d_in, REAL *d_w, const REAL *d_out, const REAL *in,
                          const REAL *w, const REAL *rstd, int n, int dim)
{
  /* y_k = x_k·s·w_k with s = (mean(x²)+eps)^−½:
   * dx_k = s·w_k·dy_k − x_k·s³/dim · Σ_j dy_j·w_j·x_j. */
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      const REAL *x = in + (size_t) r * dim;
      const REAL *dy = d_out + (size_t) r * dim;
      REAL *dx = d_in + (size_t) r * dim;
      double s = rstd[r];
      const double dot = FN (row_dot) (dy, w, x, dim);
      REAL a = (REAL) s;
      REAL c = (REAL) (s * s * s * dot / dim);
      for (int k = 0; k < dim; k++)
        dx[k] += a * w[k] * dy[k] - c * x[k];
    }
  TF_TSAN_JOIN (team);
  if (d_w != NULL)   /* serial over rows: every row adds into the same d_w */
    for (int r = 0; r < n; r++)
      {
        const REAL *x = in + (size_t) r * dim;
        const REAL *dy = d_out + (size_t) r * dim;
        REAL s = rstd[r];
        for (int k = 0; k < dim; k++)
          d_w[k] += dy[k] * x[k] * s;
      }
}

void
FN (tf_rope_table) (REAL *table, int p0, int n_pos, int head_dim, double theta)
{
  const int half = head_dim / 2;
  for (int j = 0; j < half; j++)
    {
      const double freq = pow (theta, -2.0 * j / head_dim);
      for (int p = 0; p < n_pos; p++)
        {
          const double angle = (double) (p0 + p) * freq;
          table[((size_t) p * half + j) * 2] = (REAL) cos (angle);
          table[((size_t) p * half + j) * 2 + 1] = (REAL) sin (angle);
        }
    }
}

/* Rotates one pair (a, b) by the angle of cosine @c and sine @s. */
static inline void
FN (rope_pair) (REAL *pair, REAL c, REAL s)
{
  const REAL a = pair[0], b = pair[1];
  pair[0] = a * c - b * s;
  pair[1] = a * s + b * c;
}

/* Rotates every pair of a row's @n_heads heads by the angles in @cs. */
static inline void
FN (rope_row) (REAL *row, const REAL *cs, int n_heads, int head_dim, REAL direction)
{
  for (int h = 0; h < n_heads; h++)
    for (int j = 0; j < head_dim / 2; j++)
      FN (rope_pair) (row + h * head_dim + 2 * j, cs[2 * j], direction * cs[2 * j + 1]);
}

/* Rotates each row's pairs by the angles of its position, read from @table
 * (rows for positions p_min, p_min + 1, …); @direction −1 rotates back. */
TF_VECTOR_CLONES static void
FN (rope_apply) (REAL *x, int stride, const int *pos, int n, int n_heads, int head_dim,
                 const REAL *table, int p_min, REAL direction)
{
  const int half = head_dim / 2;
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if ((double) n * n_heads * head_dim >= 65536)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      FN (rope_row) (x + (size_t) r * stride, table + (size_t) (pos[r] - p_min) * half * 2,
                     n_heads, head_dim, direction);
    }
  TF_TSAN_JOIN (team);
}

/* Axial RoPE: even pairs turn by @pos_row's angles, odd pairs by
 * @pos_col's, so that each axis has pairs of every frequency band. A
 * separate loop from rope_apply's, so that 1-D RoPE runs as fast as it did.
 * A patch's two strided passes can differ in the last bit from rope_row,
 * which the compiler vectorises with fused multiply-add-subtracts. */
TF_VECTOR_CLONES static void
FN (rope_apply_axial) (REAL *x, int stride, const int *pos_row, const int *pos_col, int n,
                       int n_heads, int head_dim, const REAL *table, int p_min,
                       REAL direction)
{
  const int half = head_dim / 2;
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if ((double) n * n_heads * head_dim >= 65536)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      REAL *row = x + (size_t) r * stride;
      const REAL *cs_row = table + (size_t) (pos_row[r] - p_min) * half * 2;
      const REAL *cs_col = table + (size_t) (pos_col[r] - p_min) * half * 2;
      if (cs_col == cs_row)   /* text: 1-D RoPE, the same bits as rope_apply's */
        FN (rope_row) (row, cs_row, n_heads, head_dim, direction);
      else   /* a patch: even pairs by its row, odd pairs by its column */
        for (int h = 0; h < n_heads; h++)
          {
            REAL *head = row + h * head_dim;
            for (int j = 0; j < half; j += 2)
              FN (rope_pair) (head + 2 * j, cs_row[2 * j], direction * cs_row[2 * j + 1]);
            for (int j = 1; j < half; j += 2)
              FN (rope_pair) (head + 2 * j, cs_col[2 * j], direction * cs_col[2 * j + 1]);
          }
    }
  TF_TSAN_JOIN (team);
}

/* pos_col NULL: 1-D RoPE; else axial. */
static void
FN (rope_apply_table) (REAL *x, int stride, const int *pos_row, const int *pos_col, int n,
                       int n_heads, int head_dim, const REAL *table, int p_min,
                       REAL direction)
{
  if (pos_col == NULL)
    FN (rope_apply) (x, stride, pos_row, n, n_heads, head_dim, table, p_min, direction);
  else
    FN (rope_apply_axial) (x, stride, pos_row, pos_col, n, n_heads, head_dim, table, p_min,
                           direction);
}

static void
FN (rope_rotate) (REAL *x, int stride, const int *pos_row, const int *pos_col, int n,
                  int n_heads, int head_dim, double theta, REAL direction)
{
  if (n <= 0)
    return;
  int p_min = pos_row[0], p_max = pos_row[0];
  for (int r = 1; r < n; r++)
    {
      p_min = MIN (p_min, pos_row[r]);
      p_max = MAX (p_max, pos_row[r]);
    }
  for (int r = 0; pos_col != NULL && r < n; r++)
    {
      p_min = MIN (p_min, pos_col[r]);
      p_max = MAX (p_max, pos_col[r]);
    }
  /* cos and sin of each (position, pair) in the rows' range once, rather
   * than once per row */
  const int n_pos = p_max - p_min + 1;
  REAL *table = g_new (REAL, (size_t) n_pos * (head_dim / 2) * 2);
  FN (tf_rope_table) (table, p_min, n_pos, head_dim, theta);
  FN (rope_apply_table) (x, stride, pos_row, pos_col, n, n_heads, head_dim, table, p_min,
                         direction);
  g_free (table);
}

void
FN (tf_rope_forward_table) (REAL *x, int stride, const int *pos_row, const int *pos_col,
                            int n, int n_heads, int head_dim, const REAL *table)
{
  FN (rope_apply_table) (x, stride, pos_row, pos_col, n, n_heads, head_dim, table, 0, 1);
}

void
FN (tf_rope_forward) (REAL *x, int stride, const int *pos_row, const int *pos_col, int n,
                      int n_heads, int head_dim, double theta)
{
  FN (rope_rotate) (x, stride, pos_row, pos_col, n, n_heads, head_dim, theta, 1.0);
}

void
FN (tf_rope_backward) (REAL *d_x, int stride, const int *pos_row, const int *pos_col, int n,
                       int n_heads, int head_dim, double theta)
{
  /* The rotation is orthogonal: its transpose rotates by −angle. */
  FN (rope_rotate) (d_x, stride, pos_row, pos_col, n, n_heads, head_dim, theta, -1.0);
}

/* The keys that queries i0..i1−1 of row @b see, together: lo..hi of their
 * union (hi < lo when none sees any). */
static void
FN (attention_span) (const int *lo, const int *hi, int b, int seq_len, int i0, int i1,
                     int *k0, int *k1)
{
  *k0 = seq_len;
  *k1 = -1;
  for (int i = i0; i < i1; i++)
    {
      const int pi = b * seq_len + i;
      if (hi[pi] < lo[pi])
        continue;
      *k0 = MIN (*k0, lo[pi]);
      *k1 = MAX (*k1, hi[pi]);
    }
}

/* Queries are taken in blocks of TF_ATTENTION_BLOCK rows; for each block the
 * scores against the keys the block sees are one matrix product, the softmax
 * runs over each query's own range (zero elsewhere in the block's span), and
 * the output is a second product. */
#define TF_ATTENTION_BLOCK 64

TF_VECTOR_CLONES void
FN (tf_attention_forward) (REAL *out, REAL *probs, const REAL *qkv,
                           const int *lo, const int *hi,
                           int batch, int seq_len, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim, L = seq_len;
  const int row3 = 3 * d;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

  TF_TSAN_FORK (team);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < batch; b++)
    for (int h = 0; h < n_heads; h++)
      {
        TF_TSAN_MEMBER (team);
        const REAL *base = qkv + (size_t) b * L * row3;
        for (int i0 = 0; i0 < L; i0 += TF_ATTENTION_BLOCK)
          {
            const int i1 = MIN (L, i0 + TF_ATTENTION_BLOCK), nq = i1 - i0;
            REAL *o = out + ((size_t) b * L + i0) * d + h * head_dim;
            int k0, k1;
            FN (attention_span) (lo, hi, b, L, i0, i1, &k0, &k1);
            if (k1 < k0)
              {
                for (int i = 0; i < nq; i++)
                  memset (o + (size_t) i * d, 0, sizeof (REAL) * head_dim);
                continue;
              }
            const int nk = k1 - k0 + 1;
            REAL *p = probs + (((size_t) b * n_heads + h) * L + i0) * L + k0;
            GEMM (CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, head_dim, scale,
                  base + (size_t) i0 * row3 + h * head_dim, row3,
                  base + (size_t) k0 * row3 + d + h * head_dim, row3, 0.0, p, L);
            for (int i = 0; i < nq; i++)
              {
                const int pi = b * L + i0 + i;
                REAL *row = p + (size_t) i * L;
                const int j0 = lo[pi] - k0, j1 = hi[pi] - k0;
                const REAL max = FN (row_max) (row + j0, j1 - j0 + 1);
                const double sum = FN (row_sum_exp) (row + j0, row + j0, max, j1 - j0 + 1);
                const REAL inv = j1 >= j0 ? (REAL) (1 / sum) : 0;
                for (int j = 0; j < nk; j++)
                  row[j] = j >= j0 && j <= j1 ? row[j] * inv : 0;
              }
            GEMM (CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, head_dim, nk, 1.0,
                  p, L, base + (size_t) k0 * row3 + 2 * d + h * head_dim, row3, 0.0, o, d);
          }
      }
  TF_TSAN_JOIN (team);
}

TF_VECTOR_CLONES void
FN (tf_attention_backward) (REAL *d_qkv, const REAL *d_out, const REAL *qkv,
                            const REAL *probs, const int *lo, const int *hi,
                            int batch, int seq_len, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim, L = seq_len;
  const int row3 = 3 * d;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

  memset (d_qkv, 0, sizeof (REAL) * row3 * batch * seq_len);

  /* Each (b, h) task writes only head h's columns of row block b, so the
   * tasks are independent and the result does not depend on scheduling.
   * With P the probabilities of a query block and dO its output gradient:
   * dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale, dV += Pᵀ·dO,
   * dQ += dS·K, dK += dSᵀ·Q. */
  TF_TSAN_FORK (team);
#pragma omp parallel
  {
    TF_TSAN_MEMBER (team);
    REAL *ds = g_new (REAL, (size_t) TF_ATTENTION_BLOCK * L);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++)
      for (int h = 0; h < n_heads; h++)
        {
          const REAL *base = qkv + (size_t) b * L * row3;
          REAL *d_base = d_qkv + (size_t) b * L * row3;
          for (int i0 = 0; i0 < L; i0 += TF_ATTENTION_BLOCK)
            {
              const int i1 = MIN (L, i0 + TF_ATTENTION_BLOCK), nq = i1 - i0;
              int k0, k1;
              FN (attention_span) (lo, hi, b, L, i0, i1, &k0, &k1);
              if (k1 < k0)
                continue;
              const int nk = k1 - k0 + 1;
              const REAL *p = probs + (((size_t) b * n_heads + h) * L + i0) * L + k0;
              const REAL *dout = d_out + ((size_t) b * L + i0) * d + h * head_dim;
              const REAL *q = base + (size_t) i0 * row3 + h * head_dim;
              const REAL *k = base + (size_t) k0 * row3 + d + h * head_dim;
              const REAL *v = base + (size_t) k0 * row3 + 2 * d + h * head_dim;

              GEMM (CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, head_dim, 1.0,
                    dout, d, v, row3, 0.0, ds, nk);
              for (int i = 0; i < nq; i++)
                {
                  const REAL *pr = p + (size_t) i * L;
                  REAL *dr = ds + (size_t) i * nk;
                  const double pdp = FN (row_dot) (pr, dr, NULL, nk);
                  for (int j = 0; j < nk; j++)
                    dr[j] = pr[j] * (dr[j] - (REAL) pdp) * scale;
                }
              GEMM (CblasRowMajor, CblasTrans, CblasNoTrans, nk, head_dim, nq, 1.0,
                    p, L, dout, d, 1.0, d_base + (size_t) k0 * row3 + 2 * d + h * head_dim, row3);
              GEMM (CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, head_dim, nk, 1.0,
                    ds, nk, k, row3, 1.0, d_base + (size_t) i0 * row3 + h * head_dim, row3);
              GEMM (CblasRowMajor, CblasTrans, CblasNoTrans, nk, head_dim, nq, 1.0,
                    ds, nk, q, row3, 1.0, d_base + (size_t) k0 * row3 + d + h * head_dim, row3);
            }
        }
    g_free (ds);
  }
  TF_TSAN_JOIN (team);
}

TF_VECTOR_CLONES void
FN (tf_attention_cached_forward) (REAL *out, REAL *scores, const REAL *q, int q_stride,
                                  const REAL *k_cache, const REAL *v_cache,
                                  int p0, int n, int block, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim;
  const int n_keys = p0 + n;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

  /* One decoded token is too little work to share between threads. */
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if ((double) n * n_keys * d >= 65536)
  for (int h = 0; h < n_heads; h++)
    {
      TF_TSAN_MEMBER (team);
      REAL *p = scores + (size_t) h * n * n_keys;
      GEMM (CblasRowMajor, CblasNoTrans, CblasTrans, n, n_keys, head_dim, scale,
            q + h * head_dim, q_stride, k_cache + h * head_dim, d, 0.0, p, n_keys);
      for (int i = 0; i < n; i++)
        {
          REAL *row = p + (size_t) i * n_keys;
          const int last = block ? n_keys - 1 : p0 + i;
          const REAL max = FN (row_max) (row, last + 1);
          const REAL inv = (REAL) (1 / FN (row_sum_exp) (row, row, max, last + 1));
          for (int j = 0; j <= last; j++)
            row[j] *= inv;
          for (int j = last + 1; j < n_keys; j++)
            row[j] = 0;
        }
      GEMM (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, head_dim, n_keys, 1.0,
            p, n_keys, v_cache + h * head_dim, d, 0.0, out + h * head_dim, d);
    }
  TF_TSAN_JOIN (team);
}

static inline REAL
FN (sigmoid) (REAL x)
{
  return 1 / (1 + EXP (-x));
}

TF_VECTOR_CLONES void
FN (tf_swiglu_forward) (REAL *out, const REAL *gate_up, int n, int hidden)
{
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if ((double) n * hidden >= 65536)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      const REAL *g = gate_up + (size_t) r * 2 * hidden;
      const REAL *u = g + hidden;
      REAL *y = out + (size_t) r * hidden;
      for (int k = 0; k < hidden; k++)
        y[k] = g[k] * FN (sigmoid) (g[k]) * u[k];
    }
  TF_TSAN_JOIN (team);
}

TF_VECTOR_CLONES void
FN (tf_swiglu_backward) (REAL *d_gate_up, const REAL *d_out, const REAL *gate_up,
                         int n, int hidden)
{
  /* silu'(g) = σ(g)·(1 + g·(1 − σ(g))) */
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      const REAL *g = gate_up + (size_t) r * 2 * hidden;
      const REAL *u = g + hidden;
      const REAL *dy = d_out + (size_t) r * hidden;
      REAL *dg = d_gate_up + (size_t) r * 2 * hidden;
      REAL *du = dg + hidden;
      for (int k = 0; k < hidden; k++)
        {
          REAL s = FN (sigmoid) (g[k]);
          du[k] = dy[k] * g[k] * s;
          dg[k] = dy[k] * u[k] * s * (1 + g[k] * (1 - s));
        }
    }
  TF_TSAN_JOIN (team);
}

TF_VECTOR_CLONES void
FN (tf_silu_forward) (REAL *out, const REAL *in, int n)
{
  for (int k = 0; k < n; k++)
    out[k] = in[k] * FN (sigmoid) (in[k]);
}

TF_VECTOR_CLONES void
FN (tf_silu_backward) (REAL *d_in, const REAL *d_out, const REAL *in, int n)
{
  for (int k = 0; k < n; k++)
    {
      REAL s = FN (sigmoid) (in[k]);
      d_in[k] = d_out[k] * s * (1 + in[k] * (1 - s));
    }
}

/* adaLN (DiT): rows of group g ≥ 0 (an image) take that group's shift and
 * scale, mod[g·mod_stride + …]; rows of group −1 (text, padding) pass. */
void
FN (tf_modulate_forward) (REAL *out, const REAL *in, const REAL *shift, const REAL *scale,
                          int mod_stride, const int *group, int n, int dim)
{
  for (int r = 0; r < n; r++)
    {
      const REAL *x = in + (size_t) r * dim;
      REAL *y = out + (size_t) r * dim;
      const int g = group[r];
      if (g < 0)
        {
          if (y != x)
            memcpy (y, x, sizeof (REAL) * dim);
          continue;
        }
      const REAL *sh = shift + (size_t) g * mod_stride, *sc = scale + (size_t) g * mod_stride;
      for (int e = 0; e < dim; e++)
        y[e] = x[e] * (1 + sc[e]) + sh[e];
    }
}

void
FN (tf_modulate_backward) (REAL *d_in, REAL *d_shift, REAL *d_scale, const REAL *d_out,
                           const REAL *in, const REAL *scale, int mod_stride, const int *group,
                           int n, int dim)
{
  for (int r = 0; r < n; r++)
    {
      const REAL *dy = d_out + (size_t) r * dim, *x = in + (size_t) r * dim;
      REAL *dx = d_in + (size_t) r * dim;
      const int g = group[r];
      if (g < 0)
        {
          if (dx != dy)
            memcpy (dx, dy, sizeof (REAL) * dim);
          continue;
        }
      const REAL *sc = scale + (size_t) g * mod_stride;
      REAL *dsh = d_shift + (size_t) g * mod_stride, *dsc = d_scale + (size_t) g * mod_stride;
      for (int e = 0; e < dim; e++)
        {
          dsh[e] += dy[e];
          dsc[e] += dy[e] * x[e];
          dx[e] = dy[e] * (1 + sc[e]);
        }
    }
}

void
FN (tf_gate_residual_forward) (REAL *x, const REAL *y, const REAL *gate, int mod_stride,
                               const int *group, int n, int dim)
{
  for (int r = 0; r < n; r++)
    {
      REAL *xr = x + (size_t) r * dim;
      const REAL *yr = y + (size_t) r * dim;
      const int g = group[r];
      if (g < 0)
        for (int e = 0; e < dim; e++)
          xr[e] += yr[e];
      else
        {
          const REAL *gt = gate + (size_t) g * mod_stride;
          for (int e = 0; e < dim; e++)
            xr[e] += gt[e] * yr[e];
        }
    }
}

void
FN (tf_gate_residual_backward) (REAL *d_y, REAL *d_gate, const REAL *d_x, const REAL *y,
                                const REAL *gate, int mod_stride, const int *group, int n,
                                int dim)
{
  for (int r = 0; r < n; r++)
    {
      const REAL *dx = d_x + (size_t) r * dim, *yr = y + (size_t) r * dim;
      REAL *dy = d_y + (size_t) r * dim;
      const int g = group[r];
      if (g < 0)
        {
          memcpy (dy, dx, sizeof (REAL) * dim);
          continue;
        }
      const REAL *gt = gate + (size_t) g * mod_stride;
      REAL *dg = d_gate + (size_t) g * mod_stride;
      for (int e = 0; e < dim; e++)
        {
          dg[e] += dx[e] * yr[e];
          dy[e] = dx[e] * gt[e];
        }
    }
}

void
FN (tf_timestep_code) (REAL *out, double t, int dim)
{
  int half = dim / 2;
  for (int i = 0; i < half; i++)
    {
      double f = exp (-log (10000.0) * i / half);
      out[i] = (REAL) cos (t * f);
      out[half + i] = (REAL) sin (t * f);
    }
}

TF_VECTOR_CLONES double
FN (tf_cross_entropy_forward) (REAL *losses, const REAL *logits, const int32_t *targets,
                               int n, int vocab)
{
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      if (targets[r] < 0)
        {
          losses[r] = 0;
          continue;
        }
      const REAL *z = logits + (size_t) r * vocab;
      const REAL max = FN (row_max) (z, vocab);
      const double sum = FN (row_sum_exp) (NULL, z, max, vocab);
      losses[r] = (REAL) (log (sum) + max - z[targets[r]]);
    }
  TF_TSAN_JOIN (team);
  double total = 0.0;   /* serial, so the sum is the same on any thread count */
  for (int r = 0; r < n; r++)
    total += losses[r];
  return total;
}

TF_VECTOR_CLONES void
FN (tf_cross_entropy_backward) (REAL *d_logits, const REAL *logits, const int32_t *targets,
                                int n, int vocab, double scale)
{
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      TF_TSAN_MEMBER (team);
      REAL *dz = d_logits + (size_t) r * vocab;
      if (targets[r] < 0)
        {
          memset (dz, 0, sizeof (REAL) * vocab);
          continue;
        }
      const REAL *z = logits + (size_t) r * vocab;
      const REAL max = FN (row_max) (z, vocab);
      const double sum = FN (row_sum_exp) (dz, z, max, vocab);
      const REAL f = (REAL) (scale / sum);
      for (int v = 0; v < vocab; v++)
        dz[v] *= f;
      dz[targets[r]] -= (REAL) scale;
    }
  TF_TSAN_JOIN (team);
}

double
FN (tf_squared_error_forward) (const REAL *pred, const REAL *target, int n)
{
  double sum = 0.0;
  for (int k = 0; k < n; k++)
    {
      double e = (double) pred[k] - target[k];
      sum += e * e;
    }
  return sum;
}

void
FN (tf_squared_error_backward) (REAL *d_pred, const REAL *pred, const REAL *target, int n,
                                double scale)
{
  for (int k = 0; k < n; k++)
    d_pred[k] = (REAL) (2.0 * scale * ((double) pred[k] - target[k]));
}

void
FN (tf_patchify) (REAL *patches, const REAL *image, int size, int channels, int p)
{
  const int per_side = size / p;
  const int patch_dim = p * p * channels;
  for (int pr = 0; pr < per_side; pr++)
    for (int pc = 0; pc < per_side; pc++)
      {
        REAL *dst = patches + (size_t) (pr * per_side + pc) * patch_dim;
        for (int dy = 0; dy < p; dy++)
          memcpy (dst + (size_t) dy * p * channels,
                  image + ((size_t) (pr * p + dy) * size + pc * p) * channels,
                  sizeof (REAL) * p * channels);
      }
}

void
FN (tf_unpatchify) (REAL *image, const REAL *patches, int size, int channels, int p)
{
  const int per_side = size / p;
  const int patch_dim = p * p * channels;
  for (int pr = 0; pr < per_side; pr++)
    for (int pc = 0; pc < per_side; pc++)
      {
        const REAL *src = patches + (size_t) (pr * per_side + pc) * patch_dim;
        for (int dy = 0; dy < p; dy++)
          memcpy (image + ((size_t) (pr * p + dy) * size + pc * p) * channels,
                  src + (size_t) dy * p * channels,
                  sizeof (REAL) * p * channels);
      }
}

/* ---- Convolutions (U-Net) ------------------------------------------------ */

/* The rows of the im2col matrix are output pixels, its columns (ky, kx, cin):
 * cols[(y·Wo + x), (ky·k + kx)·Cin + c] = in[y·s + ky − k/2, x·s + kx − k/2, c],
 * zero outside the image. One image at a time. */
static void
FN (im2col) (REAL *cols, const REAL *in, int H, int W, int Cin, int k, int stride)
{
  const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, pad = k / 2;
  const size_t row = (size_t) k * k * Cin;
  for (int y = 0; y < Ho; y++)
    for (int x = 0; x < Wo; x++)
      {
        REAL *dst = cols + ((size_t) y * Wo + x) * row;
        for (int ky = 0; ky < k; ky++)
          {
            const int iy = y * stride + ky - pad;
            for (int kx = 0; kx < k; kx++)
              {
                const int ix = x * stride + kx - pad;
                REAL *cell = dst + ((size_t) ky * k + kx) * Cin;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                  memset (cell, 0, sizeof (REAL) * Cin);
                else
                  memcpy (cell, in + ((size_t) iy * W + ix) * Cin, sizeof (REAL) * Cin);
              }
          }
      }
}

/* The transpose of im2col: adds each column cell back onto its pixel. */
static void
FN (col2im_add) (REAL *d_in, const REAL *cols, int H, int W, int Cin, int k, int stride)
{
  const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, pad = k / 2;
  const size_t row = (size_t) k * k * Cin;
  for (int y = 0; y < Ho; y++)
    for (int x = 0; x < Wo; x++)
      {
        const REAL *src = cols + ((size_t) y * Wo + x) * row;
        for (int ky = 0; ky < k; ky++)
          {
            const int iy = y * stride + ky - pad;
            if (iy < 0 || iy >= H)
              continue;
            for (int kx = 0; kx < k; kx++)
              {
                const int ix = x * stride + kx - pad;
                if (ix < 0 || ix >= W)
                  continue;
                const REAL *cell = src + ((size_t) ky * k + kx) * Cin;
                REAL *dst = d_in + ((size_t) iy * W + ix) * Cin;
                for (int c = 0; c < Cin; c++)
                  dst[c] += cell[c];
              }
          }
      }
}

/* im2col of @m images, in parallel (each writes its own rows). */
static void
FN (im2col_images) (REAL *cols, const REAL *in, int m, int H, int W, int Cin, int k, int stride)
{
  const size_t rows = (size_t) ((H - 1) / stride + 1) * ((W - 1) / stride + 1) * k * k * Cin;
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (m > 1)
  for (int i = 0; i < m; i++)
    {
      TF_TSAN_MEMBER (team);
      FN (im2col) (cols + (size_t) i * rows, in + (size_t) i * H * W * Cin, H, W, Cin, k, stride);
    }
  TF_TSAN_JOIN (team);
}

/* Images per im2col chunk: the scratch stays near 2²² values (16 MB in
 * float), whatever the batch, and at least one image. */
static int
FN (conv_chunk) (int n, size_t per_image)
{
  const size_t cap = (size_t) 1 << 22;
  const size_t c = per_image >= cap ? 1 : cap / per_image;
  return (int) MIN ((size_t) n, c);
}

void
FN (tf_conv2d_forward) (REAL *out, const REAL *in, const REAL *w, const REAL *b, int n, int H,
                        int W, int Cin, int Cout, int k, int stride)
{
  if (n <= 0)
    return;
  const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
  const int K = k * k * Cin, P = Ho * Wo;
  if (k == 1 && stride == 1)   /* a 1×1 convolution is a linear map of each pixel */
    {
      FN (tf_linear_forward) (out, in, w, b, n * P, Cin, Cout);
      return;
    }
  const int chunk = FN (conv_chunk) (n, (size_t) P * K);
  REAL *cols = g_new (REAL, (size_t) chunk * P * K);
  for (int i0 = 0; i0 < n; i0 += chunk)
    {
      const int m = MIN (chunk, n - i0);
      FN (im2col_images) (cols, in + (size_t) i0 * H * W * Cin, m, H, W, Cin, k, stride);
      FN (tf_linear_forward) (out + (size_t) i0 * P * Cout, cols, w, b, m * P, K, Cout);
    }
  g_free (cols);
}

void
FN (tf_conv2d_backward) (REAL *d_in, REAL *d_w, REAL *d_b, const REAL *d_out, const REAL *in,
                         const REAL *w, int n, int H, int W, int Cin, int Cout, int k,
                         int stride)
{
  if (n <= 0)
    return;
  const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
  const int K = k * k * Cin, P = Ho * Wo;
  if (k == 1 && stride == 1)
    {
      FN (tf_linear_backward) (d_in, d_w, d_b, d_out, in, w, n * P, Cin, Cout);
      return;
    }
  const int chunk = FN (conv_chunk) (n, (size_t) P * K);
  REAL *cols = g_new (REAL, (size_t) chunk * P * K);
  for (int i0 = 0; i0 < n; i0 += chunk)
    {
      const int m = MIN (chunk, n - i0);
      const REAL *dy = d_out + (size_t) i0 * P * Cout;
      if (d_w != NULL || d_b != NULL)   /* d_W += d_outᵀ · cols */
        {
          if (d_w != NULL)
            FN (im2col_images) (cols, in + (size_t) i0 * H * W * Cin, m, H, W, Cin, k, stride);
          FN (tf_linear_backward) (NULL, d_w, d_b, dy, cols, w, m * P, K, Cout);
        }
      if (d_in != NULL)   /* d_cols = d_out · W, then back onto the pixels */
        {
          FN (gemm) (CblasNoTrans, CblasNoTrans, m * P, K, Cout, 1.0, dy, Cout, w, K, 0.0,
                     cols, K);
          /* each image's pixels are its own: the images can go in parallel */
          TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (m > 1)
          for (int i = 0; i < m; i++)
            {
              TF_TSAN_MEMBER (team);
              FN (col2im_add) (d_in + (size_t) (i0 + i) * H * W * Cin, cols + (size_t) i * P * K,
                               H, W, Cin, k, stride);
            }
          TF_TSAN_JOIN (team);
        }
    }
  g_free (cols);
}

void
FN (tf_upsample2x_forward) (REAL *out, const REAL *in, int n, int H, int W, int C)
{
  for (int i = 0; i < n; i++)
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < 2 * W; x++)
        memcpy (out + (((size_t) i * 2 * H + y) * 2 * W + x) * C,
                in + (((size_t) i * H + y / 2) * W + x / 2) * C, sizeof (REAL) * C);
}

void
FN (tf_upsample2x_backward) (REAL *d_in, const REAL *d_out, int n, int H, int W, int C)
{
  for (int i = 0; i < n; i++)
    for (int y = 0; y < 2 * H; y++)
      for (int x = 0; x < 2 * W; x++)
        {
          const REAL *src = d_out + (((size_t) i * 2 * H + y) * 2 * W + x) * C;
          REAL *dst = d_in + (((size_t) i * H + y / 2) * W + x / 2) * C;
          for (int c = 0; c < C; c++)
            dst[c] += src[c];
        }
}
