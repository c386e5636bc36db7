/* test-layers.c: every layer's backward against central finite differences,
 * in double precision (the _f64 kernels are compiled from the same source as
 * the float ones), plus float-vs-double agreement of the forwards.
 *
 * For a layer y = f(x, w) the test takes the scalar s = Σ r·y with fixed
 * random r, runs the backward with d_y = r, and compares every analytic
 * d s/d x and d s/d w with (s(x + h) − s(x − h)) / 2h. */
#include "tf-layers.h"
#include "tf-rng.h"
#include "tf-test-util.h"

#include <math.h>
#include <string.h>

#define FD_STEP 1e-6
#define FD_ATOL 1e-8
#define FD_RTOL 1e-6

static TfRng rng;

static double *
randn (size_t n, double scale)
{
  double *v = g_new (double, n);
  for (size_t i = 0; i < n; i++)
    v[i] = scale * tf_rng_normal (&rng);
  return v;
}

/* A layer under test: evaluates s = Σ r·y for the current inputs. */
typedef double (*LossFn) (void *ctx);

/* Checks analytic[i] against the central difference of loss() in x[i]. */
static gboolean
check_gradient (const char *name, double *x, size_t n, const double *analytic,
                LossFn loss, void *ctx)
{
  g_autofree double *numeric = g_new (double, n);
  for (size_t i = 0; i < n; i++)
    {
      double saved = x[i];
      x[i] = saved + FD_STEP;
      double up = loss (ctx);
      x[i] = saved - FD_STEP;
      double down = loss (ctx);
      x[i] = saved;
      numeric[i] = (up - down) / (2 * FD_STEP);
    }
  double worst;
  gboolean ok = tf_test_close_f64 (name, analytic, numeric, n, FD_ATOL, FD_RTOL, &worst);
  g_test_message ("%s: largest share of tolerance used %.3g", name, worst);
  return ok;
}

static double
dot (const double *a, const double *b, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* ---- linear ------------------------------------------------------------ */

typedef struct { double *in, *w, *b, *r, *out; int n, i, o; } LinearCtx;

static double
linear_loss (void *p)
{
  LinearCtx *c = p;
  tf_linear_forward_f64 (c->out, c->in, c->w, c->b, c->n, c->i, c->o);
  return dot (c->out, c->r, (size_t) c->n * c->o);
}

static void
test_linear (void)
{
  LinearCtx c = { .n = 5, .i = 7, .o = 6 };
  c.in = randn (c.n * c.i, 1); c.w = randn (c.o * c.i, 1); c.b = randn (c.o, 1);
  c.r = randn (c.n * c.o, 1); c.out = g_new (double, c.n * c.o);
  g_autofree double *d_in = g_new0 (double, c.n * c.i);
  g_autofree double *d_w = g_new0 (double, c.o * c.i);
  g_autofree double *d_b = g_new0 (double, c.o);
  tf_linear_backward_f64 (d_in, d_w, d_b, c.r, c.in, c.w, c.n, c.i, c.o);
  gboolean ok = check_gradient ("linear d_in", c.in, c.n * c.i, d_in, linear_loss, &c);
  ok &= check_gradient ("linear d_w", c.w, c.o * c.i, d_w, linear_loss, &c);
  ok &= check_gradient ("linear d_b", c.b, c.o, d_b, linear_loss, &c);

  /* Backward adds into what is there. */
  tf_linear_backward_f64 (NULL, d_w, NULL, c.r, c.in, c.w, c.n, c.i, c.o);
  g_autofree double *twice = g_new0 (double, c.o * c.i);
  tf_linear_backward_f64 (NULL, twice, NULL, c.r, c.in, c.w, c.n, c.i, c.o);
  tf_linear_backward_f64 (NULL, twice, NULL, c.r, c.in, c.w, c.n, c.i, c.o);
  ok &= tf_test_close_f64 ("linear accumulates", d_w, twice, c.o * c.i, 1e-12, 1e-12, NULL);

  /* The residual form adds the product to what is there. */
  g_autofree double *sum = randn (c.n * c.o, 1), *expect = g_new (double, c.n * c.o);
  tf_linear_forward_f64 (c.out, c.in, c.w, NULL, c.n, c.i, c.o);
  for (int k = 0; k < c.n * c.o; k++)
    expect[k] = sum[k] + c.out[k];
  tf_linear_forward_add_f64 (sum, c.in, c.w, c.n, c.i, c.o);
  ok &= tf_test_close_f64 ("linear_forward_add", sum, expect, c.n * c.o, 1e-12, 1e-12, NULL);
  g_assert_true (ok);
  g_free (c.in); g_free (c.w); g_free (c.b); g_free (c.r); g_free (c.out);
}

/* The float products at the sizes the engine runs: split across threads
 * (large), one row (matrix–vector, decoding), and with a transposed
 * operand (the weight gradient), against sums in double. */
static void
test_linear_float_paths (void)
{
  const int sizes[][3] = { { 1, 300, 500 }, { 2, 64, 48 }, { 130, 256, 700 }, { 7, 33, 1 } };
  for (guint t = 0; t < G_N_ELEMENTS (sizes); t++)
    {
      const int n = sizes[t][0], in_dim = sizes[t][1], out_dim = sizes[t][2];
      g_autofree double *in64 = randn ((size_t) n * in_dim, 1);
      g_autofree double *w64 = randn ((size_t) out_dim * in_dim, 1);
      g_autofree double *r64 = randn ((size_t) n * out_dim, 1);
      g_autofree float *in = g_new (float, (size_t) n * in_dim);
      g_autofree float *w = g_new (float, (size_t) out_dim * in_dim);
      g_autofree float *r = g_new (float, (size_t) n * out_dim);
      for (int k = 0; k < n * in_dim; k++) in[k] = (float) (in64[k] = (float) in64[k]);
      for (int k = 0; k < out_dim * in_dim; k++) w[k] = (float) (w64[k] = (float) w64[k]);
      for (int k = 0; k < n * out_dim; k++) r[k] = (float) (r64[k] = (float) r64[k]);

      g_autofree float *out = g_new (float, (size_t) n * out_dim);
      g_autofree float *d_w = g_new0 (float, (size_t) out_dim * in_dim);
      g_autofree float *d_in = g_new0 (float, (size_t) n * in_dim);
      g_autofree float *ref_out = g_new (float, (size_t) n * out_dim);
      g_autofree float *ref_dw = g_new (float, (size_t) out_dim * in_dim);
      g_autofree float *ref_din = g_new (float, (size_t) n * in_dim);
      for (int i = 0; i < n; i++)
        for (int o = 0; o < out_dim; o++)
          {
            double acc = 0;
            for (int k = 0; k < in_dim; k++)
              acc += in64[(size_t) i * in_dim + k] * w64[(size_t) o * in_dim + k];
            ref_out[(size_t) i * out_dim + o] = (float) acc;
          }
      for (int o = 0; o < out_dim; o++)
        for (int k = 0; k < in_dim; k++)
          {
            double acc = 0;
            for (int i = 0; i < n; i++)
              acc += r64[(size_t) i * out_dim + o] * in64[(size_t) i * in_dim + k];
            ref_dw[(size_t) o * in_dim + k] = (float) acc;
          }
      for (int i = 0; i < n; i++)
        for (int k = 0; k < in_dim; k++)
          {
            double acc = 0;
            for (int o = 0; o < out_dim; o++)
              acc += r64[(size_t) i * out_dim + o] * w64[(size_t) o * in_dim + k];
            ref_din[(size_t) i * in_dim + k] = (float) acc;
          }
      /* NaN in the output must not survive a product that overwrites it. */
      for (int k = 0; k < n * out_dim; k++)
        out[k] = NAN;
      tf_linear_forward (out, in, w, NULL, n, in_dim, out_dim);
      tf_linear_backward (d_in, d_w, NULL, r, in, w, n, in_dim, out_dim);
      /* float sums of up to 700 terms of size ~1: atol covers cancellation */
      gboolean ok = tf_test_close_f32 ("float linear forward", out, ref_out, (size_t) n * out_dim,
                                       1e-4, 1e-4, NULL);
      ok &= tf_test_close_f32 ("float linear d_w", d_w, ref_dw, (size_t) out_dim * in_dim,
                               1e-4, 1e-4, NULL);
      ok &= tf_test_close_f32 ("float linear d_in", d_in, ref_din, (size_t) n * in_dim,
                               1e-4, 1e-4, NULL);
      if (!ok)
        g_error ("float linear paths differ at n %d, in %d, out %d", n, in_dim, out_dim);
    }
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct { double *table, *r, *out; const int32_t *ids; int n, dim; } EmbCtx;

static double
embedding_loss (void *p)
{
  EmbCtx *c = p;
  tf_embedding_forward_f64 (c->out, c->ids, c->table, c->n, c->dim);
  return dot (c->out, c->r, (size_t) c->n * c->dim);
}

static void
test_embedding (void)
{
  static const int32_t ids[] = { 3, 0, 3, 5, 1 };   /* a repeated id accumulates */
  EmbCtx c = { .ids = ids, .n = 5, .dim = 4 };
  c.table = randn (6 * c.dim, 1); c.r = randn (c.n * c.dim, 1);
  c.out = g_new (double, c.n * c.dim);
  g_autofree double *d_table = g_new0 (double, 6 * c.dim);
  tf_embedding_backward_f64 (d_table, c.r, ids, c.n, c.dim);
  g_assert_true (check_gradient ("embedding d_table", c.table, 6 * c.dim, d_table,
                                 embedding_loss, &c));
  g_free (c.table); g_free (c.r); g_free (c.out);
}

/* ---- rmsnorm ----------------------------------------------------------- */

typedef struct { double *in, *w, *r, *out, *rstd; int n, dim; } NormCtx;

static double
rmsnorm_loss (void *p)
{
  NormCtx *c = p;
  tf_rmsnorm_forward_f64 (c->out, c->rstd, c->in, c->w, c->n, c->dim, 1e-5);
  return dot (c->out, c->r, (size_t) c->n * c->dim);
}

static void
test_rmsnorm (void)
{
  NormCtx c = { .n = 4, .dim = 8 };
  c.in = randn (c.n * c.dim, 1); c.w = randn (c.dim, 1); c.r = randn (c.n * c.dim, 1);
  c.out = g_new (double, c.n * c.dim); c.rstd = g_new (double, c.n);
  rmsnorm_loss (&c);
  g_autofree double *d_in = g_new0 (double, c.n * c.dim);
  g_autofree double *d_w = g_new0 (double, c.dim);
  tf_rmsnorm_backward_f64 (d_in, d_w, c.r, c.in, c.w, c.rstd, c.n, c.dim);
  gboolean ok = check_gradient ("rmsnorm d_in", c.in, c.n * c.dim, d_in, rmsnorm_loss, &c);
  ok &= check_gradient ("rmsnorm d_w", c.w, c.dim, d_w, rmsnorm_loss, &c);
  g_assert_true (ok);
  g_free (c.in); g_free (c.w); g_free (c.r); g_free (c.out); g_free (c.rstd);
}

/* ---- RoPE -------------------------------------------------------------- */

typedef struct {
  double *in, *r, *work;
  const int *pos, *pos_col;
  int n, heads, hd, stride;
} RopeCtx;

static double
rope_loss (void *p)
{
  RopeCtx *c = p;
  memcpy (c->work, c->in, sizeof (double) * c->n * c->stride);
  tf_rope_forward_f64 (c->work, c->stride, c->pos, c->pos_col, c->n, c->heads, c->hd, 10000.0);
  return dot (c->work, c->r, (size_t) c->n * c->stride);
}

/* The backward against finite differences, with @pos_col NULL (1-D) or
 * axial positions. */
static void
check_rope_backward (RopeCtx *c, const char *what)
{
  size_t total = (size_t) c->n * c->stride;
  g_autofree double *d_in = g_memdup2 (c->r, sizeof (double) * total);
  tf_rope_backward_f64 (d_in, c->stride, c->pos, c->pos_col, c->n, c->heads, c->hd, 10000.0);
  g_assert_true (check_gradient (what, c->in, total, d_in, rope_loss, c));
}

static void
test_rope (void)
{
  static const int pos[] = { 0, 1, 2, 7, 100 };
  /* stride > heads·hd: the kernel must leave the other columns alone */
  RopeCtx c = { .pos = pos, .n = 5, .heads = 2, .hd = 4, .stride = 10 };
  size_t total = (size_t) c.n * c.stride;
  c.in = randn (total, 1); c.r = randn (total, 1); c.work = g_new (double, total);
  check_rope_backward (&c, "rope d_in");

  /* Position 0 is the identity; the rotation keeps norms. */
  memcpy (c.work, c.in, sizeof (double) * total);
  tf_rope_forward_f64 (c.work, c.stride, pos, NULL, c.n, c.heads, c.hd, 10000.0);
  g_assert_true (tf_test_close_f64 ("rope pos 0", c.work, c.in, c.heads * c.hd, 0, 0, NULL));
  double before = dot (c.in + c.stride * 4, c.in + c.stride * 4, c.heads * c.hd);
  double after = dot (c.work + c.stride * 4, c.work + c.stride * 4, c.heads * c.hd);
  g_assert_cmpfloat_with_epsilon (before, after, 1e-12);
  g_free (c.in); g_free (c.r); g_free (c.work);
}

/* Axial RoPE: even pairs turn as 1-D RoPE at the row position, odd pairs as
 * at the column position (to a rounding: the 1-D loop over all pairs
 * vectorises into fused multiply-add-subtracts); rows whose two positions
 * agree are 1-D RoPE bit for bit; the backward against finite differences. */
static void
test_rope_axial (void)
{
  /* text, then the 3×3 patches of an image from index 2 (rows 2..4, columns
   * 2..4), then text going on from 11; 6 pairs a head, so that both halves
   * hold low and high frequencies */
  static const int pos_row[] = { 0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 11, 12 };
  static const int pos_col[] = { 0, 1, 2, 3, 4, 2, 3, 4, 2, 3, 4, 11, 12 };
  enum { N = G_N_ELEMENTS (pos_row), HEADS = 2, HD = 12, STRIDE = 30 };
  int side_row[9], side_col[9];
  tf_rope_image_positions (side_row, side_col, 2, 3);
  g_assert_cmpmem (side_row, sizeof side_row, pos_row + 2, sizeof side_row);
  g_assert_cmpmem (side_col, sizeof side_col, pos_col + 2, sizeof side_col);

  RopeCtx c = { .pos = pos_row, .pos_col = pos_col, .n = N, .heads = HEADS, .hd = HD,
                .stride = STRIDE };
  const size_t total = (size_t) N * STRIDE;
  c.in = randn (total, 2); c.r = randn (total, 2); c.work = g_new (double, total);
  g_autofree double *by_row = g_memdup2 (c.in, sizeof (double) * total);
  g_autofree double *by_col = g_memdup2 (c.in, sizeof (double) * total);
  g_autofree double *want = g_new (double, total);
  memcpy (c.work, c.in, sizeof (double) * total);
  tf_rope_forward_f64 (c.work, STRIDE, pos_row, pos_col, N, HEADS, HD, 10000.0);
  tf_rope_forward_f64 (by_row, STRIDE, pos_row, NULL, N, HEADS, HD, 10000.0);
  tf_rope_forward_f64 (by_col, STRIDE, pos_col, NULL, N, HEADS, HD, 10000.0);
  for (int i = 0; i < N; i++)
    {
      for (int k = 0; k < STRIDE; k++)
        {
          const size_t at = (size_t) i * STRIDE + k;
          /* pair (k mod HD)/2; the columns past the heads stay as they were */
          want[at] = k >= HEADS * HD ? c.in[at] : (k % HD / 2) % 2 == 0 ? by_row[at] : by_col[at];
        }
      const size_t row = (size_t) i * STRIDE;
      if (pos_row[i] == pos_col[i])
        g_assert_cmpmem (c.work + row, sizeof (double) * STRIDE, by_row + row,
                         sizeof (double) * STRIDE);
    }
  g_assert_true (tf_test_close_f64 ("axial rope", c.work, want, total, 1e-15, 1e-15, NULL));
  check_rope_backward (&c, "axial rope d_in");

  /* float, over the table the generator uses, gives the same bits as
   * tf_rope_forward's own table */
  g_autofree float *table = g_new (float, 16 * HD);
  tf_rope_table (table, 0, 16, HD, 10000.0);
  g_autofree float *a = g_new (float, total), *b = g_new (float, total);
  for (size_t k = 0; k < total; k++)
    a[k] = b[k] = (float) c.in[k];
  tf_rope_forward (a, STRIDE, pos_row, pos_col, N, HEADS, HD, 10000.0);
  tf_rope_forward_table (b, STRIDE, pos_row, pos_col, N, HEADS, HD, table);
  g_assert_cmpmem (a, sizeof (float) * total, b, sizeof (float) * total);
  g_free (c.in); g_free (c.r); g_free (c.work);
}

/* ---- attention ----------------------------------------------------------- */

typedef struct {
  double *qkv, *r, *out, *probs;
  const int *lo, *hi;
  int batch, len, heads, hd;
} AttnCtx;

static double
attention_loss (void *p)
{
  AttnCtx *c = p;
  tf_attention_forward_f64 (c->out, c->probs, c->qkv, c->lo, c->hi, c->batch, c->len,
                            c->heads, c->hd);
  return dot (c->out, c->r, (size_t) c->batch * c->len * c->heads * c->hd);
}

static void
test_attention (void)
{
  /* Row 0: text 0-1, an image 2-4 (bidirectional), text 5; row 1: two
   * documents (0-2, 3-4) and a padding position 5. */
  static const int lo[] = { 0, 0, 0, 0, 0, 0,   0, 0, 0, 3, 3, 0 };
  static const int hi[] = { 0, 1, 4, 4, 4, 5,   0, 1, 2, 3, 4, -1 };
  AttnCtx c = { .lo = lo, .hi = hi, .batch = 2, .len = 6, .heads = 2, .hd = 4 };
  const int d = c.heads * c.hd;
  const size_t N = (size_t) c.batch * c.len;
  c.qkv = randn (N * 3 * d, 1); c.r = randn (N * d, 1); c.out = g_new (double, N * d);
  c.probs = g_new0 (double, (size_t) c.batch * c.heads * c.len * c.len);
  attention_loss (&c);
  /* The padding query attends to nothing and outputs zeros. */
  for (int e = 0; e < d; e++)
    g_assert_cmpfloat (c.out[11 * d + e], ==, 0.0);
  g_autofree double *d_qkv = g_new (double, N * 3 * d);
  tf_attention_backward_f64 (d_qkv, c.r, c.qkv, c.probs, lo, hi, c.batch, c.len, c.heads, c.hd);
  g_assert_true (check_gradient ("attention d_qkv", c.qkv, N * 3 * d, d_qkv, attention_loss, &c));
  /* Nothing flows into the padding position. */
  for (int e = 0; e < 3 * d; e++)
    g_assert_cmpfloat (d_qkv[11 * 3 * d + e], ==, 0.0);
  g_free (c.qkv); g_free (c.r); g_free (c.out); g_free (c.probs);
}

/* ---- SwiGLU and SiLU ----------------------------------------------------- */

typedef struct { double *in, *r, *out; int n, h; } ActCtx;

static double
swiglu_loss (void *p)
{
  ActCtx *c = p;
  tf_swiglu_forward_f64 (c->out, c->in, c->n, c->h);
  return dot (c->out, c->r, (size_t) c->n * c->h);
}

static double
silu_loss (void *p)
{
  ActCtx *c = p;
  tf_silu_forward_f64 (c->out, c->in, c->n);
  return dot (c->out, c->r, c->n);
}

static void
test_swiglu (void)
{
  ActCtx c = { .n = 3, .h = 5 };
  c.in = randn (c.n * 2 * c.h, 2); c.r = randn (c.n * c.h, 1); c.out = g_new (double, c.n * c.h);
  g_autofree double *d_in = g_new (double, c.n * 2 * c.h);
  tf_swiglu_backward_f64 (d_in, c.r, c.in, c.n, c.h);
  g_assert_true (check_gradient ("swiglu d_gate_up", c.in, c.n * 2 * c.h, d_in, swiglu_loss, &c));
  g_free (c.in); g_free (c.r); g_free (c.out);
}

static void
test_silu (void)
{
  ActCtx c = { .n = 12 };
  c.in = randn (c.n, 3); c.r = randn (c.n, 1); c.out = g_new (double, c.n);
  g_autofree double *d_in = g_new (double, c.n);
  tf_silu_backward_f64 (d_in, c.r, c.in, c.n);
  g_assert_true (check_gradient ("silu d_in", c.in, c.n, d_in, silu_loss, &c));
  g_free (c.in); g_free (c.r); g_free (c.out);
}

/* ---- adaLN: modulation and gated residuals --------------------------------- */

/* Rows of three groups and text (−1), modulation rows of stride 6·dim with
 * the vectors at offsets, as the model lays out a layer's six. */
typedef struct { double *in, *mod, *r, *out, *x0; const int *group; int n, dim; } ModCtx;

static const int mod_groups[] = { 0, -1, 2, 1, 0, -1, 2 };

static double
modulate_loss (void *p)
{
  ModCtx *c = p;
  tf_modulate_forward_f64 (c->out, c->in, c->mod + c->dim, c->mod + 3 * c->dim, 6 * c->dim,
                           c->group, c->n, c->dim);
  return dot (c->out, c->r, (size_t) c->n * c->dim);
}

static double
gate_loss (void *p)
{
  ModCtx *c = p;
  memcpy (c->out, c->x0, sizeof (double) * c->n * c->dim);
  tf_gate_residual_forward_f64 (c->out, c->in, c->mod + 5 * c->dim, 6 * c->dim, c->group,
                                c->n, c->dim);
  return dot (c->out, c->r, (size_t) c->n * c->dim);
}

static void
test_adaln (void)
{
  ModCtx c = { .group = mod_groups, .n = G_N_ELEMENTS (mod_groups), .dim = 5 };
  const size_t nd = (size_t) c.n * c.dim, nm = 3 * 6 * (size_t) c.dim;
  c.in = randn (nd, 1); c.mod = randn (nm, 0.5); c.r = randn (nd, 1);
  c.out = g_new (double, nd); c.x0 = randn (nd, 1);

  /* modulate: d_in, d_shift, d_scale (the other four vectors stay zero) */
  g_autofree double *d_in = g_new (double, nd), *d_mod = g_new0 (double, nm);
  tf_modulate_backward_f64 (d_in, d_mod + c.dim, d_mod + 3 * c.dim, c.r, c.in, c.mod + 3 * c.dim,
                            6 * c.dim, c.group, c.n, c.dim);
  g_assert_true (check_gradient ("modulate d_in", c.in, nd, d_in, modulate_loss, &c));
  g_assert_true (check_gradient ("modulate d_mod", c.mod, nm, d_mod, modulate_loss, &c));
  /* text rows pass unchanged */
  modulate_loss (&c);
  g_assert_cmpmem (c.out + c.dim, sizeof (double) * c.dim, c.in + c.dim, sizeof (double) * c.dim);

  /* gated residual: d_y, d_gate; x itself passes through with gradient r */
  memset (d_mod, 0, sizeof (double) * nm);
  tf_gate_residual_backward_f64 (d_in, d_mod + 5 * c.dim, c.r, c.in, c.mod + 5 * c.dim,
                                 6 * c.dim, c.group, c.n, c.dim);
  g_assert_true (check_gradient ("gate d_y", c.in, nd, d_in, gate_loss, &c));
  g_assert_true (check_gradient ("gate d_gate", c.mod, nm, d_mod, gate_loss, &c));
  g_assert_true (check_gradient ("gate d_x", c.x0, nd, c.r, gate_loss, &c));

  /* a zero gate (adaLN-Zero's start) leaves an image row as it was */
  memset (c.mod, 0, sizeof (double) * nm);
  gate_loss (&c);
  g_assert_cmpmem (c.out, sizeof (double) * c.dim, c.x0, sizeof (double) * c.dim);
  g_free (c.in); g_free (c.mod); g_free (c.r); g_free (c.out); g_free (c.x0);
}

/* ---- convolutions and up-sampling (U-Net) ------------------------------- */

typedef struct { double *in, *w, *b, *r, *out; int n, H, W, ci, co, k, s; } ConvCtx;

static int conv_out_side (int side, int stride) { return (side - 1) / stride + 1; }

static size_t
conv_out_size (const ConvCtx *c)
{
  return (size_t) c->n * conv_out_side (c->H, c->s) * conv_out_side (c->W, c->s) * c->co;
}

static double
conv_loss (void *p)
{
  ConvCtx *c = p;
  tf_conv2d_forward_f64 (c->out, c->in, c->w, c->b, c->n, c->H, c->W, c->ci, c->co, c->k, c->s);
  return dot (c->out, c->r, conv_out_size (c));
}

/* The convolution straight from its definition (as PyTorch's conv2d with
 * padding k/2 on channels-last images), to check the forward itself. */
static void
conv_direct (const ConvCtx *c, double *out)
{
  const int Ho = conv_out_side (c->H, c->s), Wo = conv_out_side (c->W, c->s), pad = c->k / 2;
  for (int i = 0; i < c->n; i++)
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++)
        for (int o = 0; o < c->co; o++)
          {
            double sum = c->b[o];
            for (int ky = 0; ky < c->k; ky++)
              for (int kx = 0; kx < c->k; kx++)
                {
                  const int iy = y * c->s + ky - pad, ix = x * c->s + kx - pad;
                  if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W)
                    continue;
                  for (int ch = 0; ch < c->ci; ch++)
                    sum += c->w[(size_t) o * c->k * c->k * c->ci + (ky * c->k + kx) * c->ci + ch] *
                           c->in[(((size_t) i * c->H + iy) * c->W + ix) * c->ci + ch];
                }
            out[(((size_t) i * Ho + y) * Wo + x) * c->co + o] = sum;
          }
}

static void
test_conv2d (void)
{
  /* 3×3 and 1×1, stride 1 and 2 (odd sides: the last row and column of a
   * stride-2 output see the padding) */
  const int cases[][2] = { { 3, 1 }, { 3, 2 }, { 1, 1 }, { 1, 2 } };
  for (guint t = 0; t < G_N_ELEMENTS (cases); t++)
    {
      ConvCtx c = { .n = 2, .H = 5, .W = 6, .ci = 3, .co = 4, .k = cases[t][0], .s = cases[t][1] };
      const size_t ni = (size_t) c.n * c.H * c.W * c.ci, nw = (size_t) c.co * c.k * c.k * c.ci;
      const size_t no = conv_out_size (&c);
      c.in = randn (ni, 1); c.w = randn (nw, 0.5); c.b = randn (c.co, 1); c.r = randn (no, 1);
      c.out = g_new (double, no);
      g_autofree double *direct = g_new (double, no);
      conv_direct (&c, direct);
      conv_loss (&c);
      g_autofree char *what = g_strdup_printf ("conv %dx%d stride %d", c.k, c.k, c.s);
      gboolean ok = tf_test_close_f64 (what, c.out, direct, no, 1e-12, 1e-12, NULL);

      g_autofree double *d_in = g_new0 (double, ni), *d_w = g_new0 (double, nw);
      g_autofree double *d_b = g_new0 (double, c.co);
      tf_conv2d_backward_f64 (d_in, d_w, d_b, c.r, c.in, c.w, c.n, c.H, c.W, c.ci, c.co, c.k, c.s);
      g_autofree char *n_in = g_strconcat (what, " d_in", NULL);
      g_autofree char *n_w = g_strconcat (what, " d_w", NULL);
      g_autofree char *n_b = g_strconcat (what, " d_b", NULL);
      ok &= check_gradient (n_in, c.in, ni, d_in, conv_loss, &c);
      ok &= check_gradient (n_w, c.w, nw, d_w, conv_loss, &c);
      ok &= check_gradient (n_b, c.b, c.co, d_b, conv_loss, &c);

      /* Backward adds into what is there. */
      g_autofree double *twice = g_new0 (double, ni);
      tf_conv2d_backward_f64 (twice, NULL, NULL, c.r, c.in, c.w, c.n, c.H, c.W, c.ci, c.co, c.k, c.s);
      tf_conv2d_backward_f64 (twice, NULL, NULL, c.r, c.in, c.w, c.n, c.H, c.W, c.ci, c.co, c.k, c.s);
      for (size_t i = 0; i < ni; i++)
        d_in[i] *= 2;
      ok &= tf_test_close_f64 ("conv accumulates", twice, d_in, ni, 1e-12, 1e-12, NULL);

      /* The float kernel agrees with the double one. */
      g_autofree float *fin = g_new (float, ni), *fw = g_new (float, nw), *fb = g_new (float, c.co);
      g_autofree float *fout = g_new (float, no);
      g_autofree double *back = g_new (double, no);
      for (size_t i = 0; i < ni; i++) fin[i] = (float) c.in[i];
      for (size_t i = 0; i < nw; i++) fw[i] = (float) c.w[i];
      for (int i = 0; i < c.co; i++) fb[i] = (float) c.b[i];
      tf_conv2d_forward (fout, fin, fw, fb, c.n, c.H, c.W, c.ci, c.co, c.k, c.s);
      for (size_t i = 0; i < no; i++) back[i] = fout[i];
      ok &= tf_test_close_f64 ("conv float", back, direct, no, 1e-5, 1e-5, NULL);
      g_assert_true (ok);
      g_free (c.in); g_free (c.w); g_free (c.b); g_free (c.r); g_free (c.out);
    }
}

typedef struct { double *in, *r, *out; int n, H, W, C; } UpCtx;

static double
upsample_loss (void *p)
{
  UpCtx *c = p;
  tf_upsample2x_forward_f64 (c->out, c->in, c->n, c->H, c->W, c->C);
  return dot (c->out, c->r, (size_t) c->n * 4 * c->H * c->W * c->C);
}

static void
test_upsample (void)
{
  UpCtx c = { .n = 2, .H = 3, .W = 2, .C = 3 };
  const size_t ni = (size_t) c.n * c.H * c.W * c.C, no = 4 * ni;
  c.in = randn (ni, 1); c.r = randn (no, 1); c.out = g_new (double, no);
  upsample_loss (&c);
  /* pixel (y, x) of the output is pixel (y/2, x/2) of the input */
  g_assert_cmpfloat (c.out[((1 * 6 + 5) * 4 + 3) * 3 + 2], ==, c.in[((1 * 3 + 2) * 2 + 1) * 3 + 2]);
  g_autofree double *d_in = g_new0 (double, ni);
  tf_upsample2x_backward_f64 (d_in, c.r, c.n, c.H, c.W, c.C);
  g_assert_true (check_gradient ("upsample d_in", c.in, ni, d_in, upsample_loss, &c));
  g_free (c.in); g_free (c.r); g_free (c.out);
}

/* ---- losses ------------------------------------------------------------- */

typedef struct { double *logits, *losses; const int32_t *targets; int n, vocab; } CeCtx;

static double
cross_entropy_loss (void *p)
{
  CeCtx *c = p;
  return tf_cross_entropy_forward_f64 (c->losses, c->logits, c->targets, c->n, c->vocab);
}

static void
test_cross_entropy (void)
{
  static const int32_t targets[] = { 2, -1, 0, 6 };
  CeCtx c = { .targets = targets, .n = 4, .vocab = 7 };
  c.logits = randn (c.n * c.vocab, 3); c.losses = g_new (double, c.n);
  g_autofree double *d_logits = g_new (double, c.n * c.vocab);
  tf_cross_entropy_backward_f64 (d_logits, c.logits, targets, c.n, c.vocab, 1.0);
  g_assert_true (check_gradient ("cross-entropy d_logits", c.logits, c.n * c.vocab, d_logits,
                                 cross_entropy_loss, &c));
  /* Uniform logits give log(V). */
  g_autofree double *flat = g_new0 (double, c.vocab);
  double loss = tf_cross_entropy_forward_f64 (c.losses, flat, targets, 1, c.vocab);
  g_assert_cmpfloat_with_epsilon (loss, log (c.vocab), 1e-12);
  g_free (c.logits); g_free (c.losses);
}

typedef struct { double *pred, *target; int n; } SeCtx;

static double
squared_error_loss (void *p)
{
  SeCtx *c = p;
  return tf_squared_error_forward_f64 (c->pred, c->target, c->n);
}

static void
test_squared_error (void)
{
  SeCtx c = { .n = 10 };
  c.pred = randn (c.n, 1); c.target = randn (c.n, 1);
  g_autofree double *d_pred = g_new (double, c.n);
  tf_squared_error_backward_f64 (d_pred, c.pred, c.target, c.n, 1.0);
  g_assert_true (check_gradient ("squared error d_pred", c.pred, c.n, d_pred,
                                 squared_error_loss, &c));
  g_free (c.pred); g_free (c.target);
}

/* ---- shapes and codes --------------------------------------------------- */

static void
test_patchify (void)
{
  const int size = 8, ch = 3, p = 4;
  g_autofree double *image = g_new (double, size * size * ch);
  for (int i = 0; i < size * size * ch; i++)
    image[i] = i;
  g_autofree double *patches = g_new (double, size * size * ch);
  g_autofree double *back = g_new (double, size * size * ch);
  tf_patchify_f64 (patches, image, size, ch, p);
  /* patch 1 (row 0, column 1), element (dy=2, dx=3, c=1) is pixel (2, 7, 1) */
  g_assert_cmpfloat (patches[1 * p * p * ch + (2 * p + 3) * ch + 1], ==, (2 * size + 7) * ch + 1);
  /* patch 2 (row 1, column 0), element (0, 0, 0) is pixel (4, 0, 0) */
  g_assert_cmpfloat (patches[2 * p * p * ch], ==, 4 * size * ch);
  tf_unpatchify_f64 (back, patches, size, ch, p);
  g_assert_cmpmem (back, sizeof (double) * size * size * ch, image, sizeof (double) * size * size * ch);
}

static void
test_timestep_code (void)
{
  double code[8];
  tf_timestep_code_f64 (code, 0.0, 8);
  for (int i = 0; i < 4; i++)
    {
      g_assert_cmpfloat (code[i], ==, 1.0);
      g_assert_cmpfloat (code[4 + i], ==, 0.0);
    }
  tf_timestep_code_f64 (code, 500.0, 8);
  g_assert_cmpfloat_with_epsilon (code[0], cos (500.0), 1e-15);
  g_assert_cmpfloat_with_epsilon (code[4 + 1], sin (500.0 * pow (10000.0, -0.25)), 1e-12);
}

/* The float kernels agree with the double ones (same source, float rounding). */
static void
test_float_matches_double (void)
{
  const int n = 6, dim = 16;
  g_autofree double *xd = randn (n * dim, 1);
  g_autofree double *wd = randn (dim, 1);
  g_autofree float *xf = g_new (float, n * dim);
  g_autofree float *wf = g_new (float, dim);
  for (int i = 0; i < n * dim; i++)
    xd[i] = xf[i] = (float) xd[i];
  for (int i = 0; i < dim; i++)
    wd[i] = wf[i] = (float) wd[i];
  g_autofree double *yd = g_new (double, n * dim), *rd = g_new (double, n);
  g_autofree float *yf = g_new (float, n * dim), *rf = g_new (float, n);
  tf_rmsnorm_forward_f64 (yd, rd, xd, wd, n, dim, 1e-5);
  tf_rmsnorm_forward (yf, rf, xf, wf, n, dim, 1e-5);
  g_autofree float *yd_f = g_new (float, n * dim);
  for (int i = 0; i < n * dim; i++)
    yd_f[i] = (float) yd[i];
  g_assert_true (tf_test_close_f32 ("rmsnorm float vs double", yf, yd_f, n * dim, 1e-6, 1e-5, NULL));
}

/* The vectorizable exponential against libm's, in units in the last place
 * of the correctly rounded float result, over its whole range. */
static void
test_expf (void)
{
  double worst = 0, worst_x = 0;
  const int n = 2000000;
  for (int i = 0; i <= n; i++)
    {
      const float x = -87.0f + 175.0f * (float) i / n;
      const double exact = exp ((double) x);
      const float ref = (float) exact;
      const double ulp = nextafterf (ref, INFINITY) - ref;
      const double err = fabs ((double) tf_expf (x) - exact) / ulp;
      if (err > worst)
        {
          worst = err;
          worst_x = x;
        }
    }
  g_test_message ("tf_expf: worst error %.2f ulp at x = %.6g", worst, worst_x);
  g_assert_cmpfloat (worst, <=, 2.0);
  /* Outside the range it saturates instead of overflowing or flushing. */
  g_assert_cmpfloat (tf_expf (-1000.0f), >, 0);
  g_assert_cmpfloat (tf_expf (-1000.0f), <, 1e-37);
  g_assert_true (isfinite (tf_expf (1000.0f)));
  /* NaN goes through as NaN, without undefined behaviour on the way (UBSan
   * in build-asan) */
  g_assert_true (isnan (tf_expf (NAN)));
  g_assert_cmpfloat (tf_expf (INFINITY), ==, tf_expf (88.0f));
  g_assert_cmpfloat (tf_expf (0.0f), ==, 1.0f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tf_rng_seed (&rng, 20241120);
  g_test_add_func ("/layers/expf", test_expf);
  g_test_add_func ("/layers/linear", test_linear);
  g_test_add_func ("/layers/linear-float-paths", test_linear_float_paths);
  g_test_add_func ("/layers/embedding", test_embedding);
  g_test_add_func ("/layers/rmsnorm", test_rmsnorm);
  g_test_add_func ("/layers/rope", test_rope);
  g_test_add_func ("/layers/rope-axial", test_rope_axial);
  g_test_add_func ("/layers/attention", test_attention);
  g_test_add_func ("/layers/swiglu", test_swiglu);
  g_test_add_func ("/layers/silu", test_silu);
  g_test_add_func ("/layers/adaln", test_adaln);
  g_test_add_func ("/layers/conv2d", test_conv2d);
  g_test_add_func ("/layers/upsample", test_upsample);
  g_test_add_func ("/layers/cross-entropy", test_cross_entropy);
  g_test_add_func ("/layers/squared-error", test_squared_error);
  g_test_add_func ("/layers/patchify", test_patchify);
  g_test_add_func ("/layers/timestep-code", test_timestep_code);
  g_test_add_func ("/layers/float-matches-double", test_float_matches_double);
  return g_test_run ();
}
