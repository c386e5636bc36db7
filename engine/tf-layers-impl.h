/* tf-layers-impl.h: kernel bodies, included by tf-layers.c once for float and
 * once for double. REAL is the element type, FN(x) names the function and
 * GEMM is the matching BLAS routine. See tf-layers.h for the contracts. */

void
FN (tf_linear_forward) (REAL *out, const REAL *in, const REAL *w, const REAL *b,
                        int n, int in_dim, int out_dim)
{
  if (n <= 0)
    return;
  GEMM (CblasRowMajor, CblasNoTrans, CblasTrans, n, out_dim, in_dim,
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
FN (tf_linear_backward) (REAL *d_in, REAL *d_w, REAL *d_b, const REAL *d_out,
                         const REAL *in, const REAL *w, int n, int in_dim, int out_dim)
{
  if (n <= 0)
    return;
  if (d_in != NULL)   /* d_in += d_out · W */
    GEMM (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in_dim, out_dim,
          1.0, d_out, out_dim, w, in_dim, 1.0, d_in, in_dim);
  if (d_w != NULL)    /* d_W += d_outᵀ · in */
    GEMM (CblasRowMajor, CblasTrans, CblasNoTrans, out_dim, in_dim, n,
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

void
FN (tf_rmsnorm_forward) (REAL *out, REAL *rstd, const REAL *in, const REAL *w,
                         int n, int dim, double eps)
{
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      const REAL *x = in + (size_t) r * dim;
      REAL *y = out + (size_t) r * dim;
      double ss = 0.0;
      for (int k = 0; k < dim; k++)
        ss += (double) x[k] * x[k];
      REAL s = (REAL) (1.0 / sqrt (ss / dim + eps));
      rstd[r] = s;
      for (int k = 0; k < dim; k++)
        y[k] = x[k] * s * w[k];
    }
}

void
FN (tf_rmsnorm_backward) (REAL *d_in, REAL *d_w, const REAL *d_out, const REAL *in,
                          const REAL *w, const REAL *rstd, int n, int dim)
{
  /* y_k = x_k·s·w_k with s = (mean(x²)+eps)^−½:
   * dx_k = s·w_k·dy_k − x_k·s³/dim · Σ_j dy_j·w_j·x_j. */
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      const REAL *x = in + (size_t) r * dim;
      const REAL *dy = d_out + (size_t) r * dim;
      REAL *dx = d_in + (size_t) r * dim;
      double s = rstd[r];
      double dot = 0.0;
      for (int k = 0; k < dim; k++)
        dot += (double) dy[k] * w[k] * x[k];
      REAL a = (REAL) s;
      REAL c = (REAL) (s * s * s * dot / dim);
      for (int k = 0; k < dim; k++)
        dx[k] += a * w[k] * dy[k] - c * x[k];
    }
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

static void
FN (rope_rotate) (REAL *x, int stride, const int *pos, int n, int n_heads, int head_dim,
                  double theta, double direction)
{
  int half = head_dim / 2;
  double *freq = g_new (double, half);
  for (int j = 0; j < half; j++)
    freq[j] = pow (theta, -2.0 * j / head_dim);
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      REAL *row = x + (size_t) r * stride;
      for (int j = 0; j < half; j++)
        {
          double angle = (double) pos[r] * freq[j];
          REAL c = (REAL) cos (angle);
          REAL s = (REAL) (direction * sin (angle));
          for (int h = 0; h < n_heads; h++)
            {
              REAL *pair = row + h * head_dim + 2 * j;
              REAL a = pair[0], b = pair[1];
              pair[0] = a * c - b * s;
              pair[1] = a * s + b * c;
            }
        }
    }
  g_free (freq);
}

void
FN (tf_rope_forward) (REAL *x, int stride, const int *pos, int n, int n_heads,
                      int head_dim, double theta)
{
  FN (rope_rotate) (x, stride, pos, n, n_heads, head_dim, theta, 1.0);
}

void
FN (tf_rope_backward) (REAL *d_x, int stride, const int *pos, int n, int n_heads,
                       int head_dim, double theta)
{
  /* The rotation is orthogonal: its transpose rotates by −angle. */
  FN (rope_rotate) (d_x, stride, pos, n, n_heads, head_dim, theta, -1.0);
}

void
FN (tf_attention_forward) (REAL *out, REAL *probs, const REAL *qkv,
                           const int *lo, const int *hi,
                           int batch, int seq_len, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim;
  const size_t row3 = 3 * (size_t) d;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < batch; b++)
    for (int h = 0; h < n_heads; h++)
      {
        const REAL *base = qkv + (size_t) b * seq_len * row3;
        for (int i = 0; i < seq_len; i++)
          {
            const int pi = b * seq_len + i;
            REAL *o = out + (size_t) pi * d + h * head_dim;
            REAL *p = probs + (((size_t) b * n_heads + h) * seq_len + i) * seq_len;
            const REAL *q = base + (size_t) i * row3 + h * head_dim;
            const int j0 = lo[pi], j1 = hi[pi];

            memset (o, 0, sizeof (REAL) * head_dim);
            if (j1 < j0)
              continue;
            REAL max = -INFINITY;
            for (int j = j0; j <= j1; j++)
              {
                const REAL *k = base + (size_t) j * row3 + d + h * head_dim;
                REAL s = 0;
                for (int e = 0; e < head_dim; e++)
                  s += q[e] * k[e];
                s *= scale;
                p[j] = s;
                if (s > max)
                  max = s;
              }
            double sum = 0.0;
            for (int j = j0; j <= j1; j++)
              {
                p[j] = (REAL) exp ((double) (p[j] - max));
                sum += p[j];
              }
            REAL inv = (REAL) (1.0 / sum);
            for (int j = j0; j <= j1; j++)
              {
                p[j] *= inv;
                const REAL *v = base + (size_t) j * row3 + 2 * d + h * head_dim;
                for (int e = 0; e < head_dim; e++)
                  o[e] += p[j] * v[e];
              }
          }
      }
}

void
FN (tf_attention_backward) (REAL *d_qkv, const REAL *d_out, const REAL *qkv,
                            const REAL *probs, const int *lo, const int *hi,
                            int batch, int seq_len, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim;
  const size_t row3 = 3 * (size_t) d;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

  memset (d_qkv, 0, sizeof (REAL) * row3 * batch * seq_len);

  /* Each (b, h) task writes only head h's columns of row block b, so the
   * tasks are independent and the result does not depend on scheduling. */
#pragma omp parallel
  {
    REAL *ds = g_new (REAL, seq_len);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < batch; b++)
      for (int h = 0; h < n_heads; h++)
        {
          const REAL *base = qkv + (size_t) b * seq_len * row3;
          REAL *d_base = d_qkv + (size_t) b * seq_len * row3;
          for (int i = 0; i < seq_len; i++)
            {
              const int pi = b * seq_len + i;
              const int j0 = lo[pi], j1 = hi[pi];
              if (j1 < j0)
                continue;
              const REAL *p = probs + (((size_t) b * n_heads + h) * seq_len + i) * seq_len;
              const REAL *dout = d_out + (size_t) pi * d + h * head_dim;
              const REAL *q = base + (size_t) i * row3 + h * head_dim;
              REAL *dq = d_base + (size_t) i * row3 + h * head_dim;

              /* dP_j = dout·v_j; dS_j = P_j (dP_j − Σ_k P_k dP_k) */
              double pdp = 0.0;
              for (int j = j0; j <= j1; j++)
                {
                  const REAL *v = base + (size_t) j * row3 + 2 * d + h * head_dim;
                  REAL *dv = d_base + (size_t) j * row3 + 2 * d + h * head_dim;
                  REAL dp = 0;
                  for (int e = 0; e < head_dim; e++)
                    {
                      dp += dout[e] * v[e];
                      dv[e] += p[j] * dout[e];
                    }
                  ds[j] = dp;
                  pdp += (double) p[j] * dp;
                }
              for (int j = j0; j <= j1; j++)
                {
                  REAL g = p[j] * (ds[j] - (REAL) pdp) * scale;
                  const REAL *k = base + (size_t) j * row3 + d + h * head_dim;
                  REAL *dk = d_base + (size_t) j * row3 + d + h * head_dim;
                  for (int e = 0; e < head_dim; e++)
                    {
                      dq[e] += g * k[e];
                      dk[e] += g * q[e];
                    }
                }
            }
        }
    g_free (ds);
  }
}

void
FN (tf_attention_cached_forward) (REAL *out, const REAL *q, int q_stride,
                                  const REAL *k_cache, const REAL *v_cache,
                                  int p0, int n, int block, int n_heads, int head_dim)
{
  const int d = n_heads * head_dim;
  const int n_keys = p0 + n;
  const REAL scale = (REAL) (1.0 / sqrt ((double) head_dim));

#pragma omp parallel
  {
    REAL *p = g_new (REAL, n_keys);
#pragma omp for collapse(2) schedule(static)
    for (int h = 0; h < n_heads; h++)
      for (int i = 0; i < n; i++)
        {
          const REAL *qi = q + (size_t) i * q_stride + h * head_dim;
          REAL *o = out + (size_t) i * d + h * head_dim;
          const int last = block ? n_keys - 1 : p0 + i;
          REAL max = -INFINITY;
          for (int j = 0; j <= last; j++)
            {
              const REAL *k = k_cache + (size_t) j * d + h * head_dim;
              REAL s = 0;
              for (int e = 0; e < head_dim; e++)
                s += qi[e] * k[e];
              s *= scale;
              p[j] = s;
              if (s > max)
                max = s;
            }
          double sum = 0.0;
          for (int j = 0; j <= last; j++)
            {
              p[j] = (REAL) exp ((double) (p[j] - max));
              sum += p[j];
            }
          const REAL inv = (REAL) (1.0 / sum);
          memset (o, 0, sizeof (REAL) * head_dim);
          for (int j = 0; j <= last; j++)
            {
              const REAL w = p[j] * inv;
              const REAL *v = v_cache + (size_t) j * d + h * head_dim;
              for (int e = 0; e < head_dim; e++)
                o[e] += w * v[e];
            }
        }
    g_free (p);
  }
}

static inline REAL
FN (sigmoid) (REAL x)
{
  return (REAL) (1.0 / (1.0 + exp (-(double) x)));
}

void
FN (tf_swiglu_forward) (REAL *out, const REAL *gate_up, int n, int hidden)
{
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      const REAL *g = gate_up + (size_t) r * 2 * hidden;
      const REAL *u = g + hidden;
      REAL *y = out + (size_t) r * hidden;
      for (int k = 0; k < hidden; k++)
        y[k] = g[k] * FN (sigmoid) (g[k]) * u[k];
    }
}

void
FN (tf_swiglu_backward) (REAL *d_gate_up, const REAL *d_out, const REAL *gate_up,
                         int n, int hidden)
{
  /* silu'(g) = σ(g)·(1 + g·(1 − σ(g))) */
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
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
}

void
FN (tf_silu_forward) (REAL *out, const REAL *in, int n)
{
  for (int k = 0; k < n; k++)
    out[k] = in[k] * FN (sigmoid) (in[k]);
}

void
FN (tf_silu_backward) (REAL *d_in, const REAL *d_out, const REAL *in, int n)
{
  for (int k = 0; k < n; k++)
    {
      REAL s = FN (sigmoid) (in[k]);
      d_in[k] = d_out[k] * s * (1 + in[k] * (1 - s));
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

double
FN (tf_cross_entropy_forward) (REAL *losses, const REAL *logits, const int32_t *targets,
                               int n, int vocab)
{
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      if (targets[r] < 0)
        {
          losses[r] = 0;
          continue;
        }
      const REAL *z = logits + (size_t) r * vocab;
      REAL max = z[0];
      for (int v = 1; v < vocab; v++)
        if (z[v] > max)
          max = z[v];
      double sum = 0.0;
      for (int v = 0; v < vocab; v++)
        sum += exp ((double) (z[v] - max));
      losses[r] = (REAL) (log (sum) + max - z[targets[r]]);
    }
  double total = 0.0;   /* serial, so the sum is the same on any thread count */
  for (int r = 0; r < n; r++)
    total += losses[r];
  return total;
}

void
FN (tf_cross_entropy_backward) (REAL *d_logits, const REAL *logits, const int32_t *targets,
                                int n, int vocab, double scale)
{
#pragma omp parallel for schedule(static) if (n >= 64)
  for (int r = 0; r < n; r++)
    {
      REAL *dz = d_logits + (size_t) r * vocab;
      if (targets[r] < 0)
        {
          memset (dz, 0, sizeof (REAL) * vocab);
          continue;
        }
      const REAL *z = logits + (size_t) r * vocab;
      REAL max = z[0];
      for (int v = 1; v < vocab; v++)
        if (z[v] > max)
          max = z[v];
      double sum = 0.0;
      for (int v = 0; v < vocab; v++)
        sum += exp ((double) (z[v] - max));
      for (int v = 0; v < vocab; v++)
        dz[v] = (REAL) (scale * exp ((double) (z[v] - max)) / sum);
      dz[targets[r]] -= (REAL) scale;
    }
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
