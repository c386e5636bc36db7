/* tf-judge-impl.h: the judge's forward and backward, included by tf-judge.c
 * once for float and once for double. REAL is the element type, FN(x) names
 * the function and LAYER(x) the matching kernel of tf-layers.h. */

/* Activations of n images, in order: a1 = fc1(x), h1 = silu(a1),
 * a2 = fc2(h1), h2 = silu(a2) (the features), logits = fc3(h2). */
static void
FN (judge_layout) (const TfJudgeDims *dims, int n, size_t *a1, size_t *h1, size_t *a2,
                   size_t *h2, size_t *logits)
{
  *a1 = 0;
  *h1 = *a1 + (size_t) n * dims->hidden;
  *a2 = *h1 + (size_t) n * dims->hidden;
  *h2 = *a2 + (size_t) n * dims->features;
  *logits = *h2 + (size_t) n * dims->features;
}

const REAL *
FN (tf_judge_acts_features) (const TfJudgeDims *dims, const REAL *acts, int n)
{
  size_t a1, h1, a2, h2, logits;
  FN (judge_layout) (dims, n, &a1, &h1, &a2, &h2, &logits);
  return acts + h2;
}

const REAL *
FN (tf_judge_acts_logits) (const TfJudgeDims *dims, const REAL *acts, int n)
{
  size_t a1, h1, a2, h2, logits;
  FN (judge_layout) (dims, n, &a1, &h1, &a2, &h2, &logits);
  return acts + logits;
}

void
FN (tf_judge_forward) (const TfJudgeDims *dims, const REAL *params, const REAL *input, int n,
                       REAL *acts)
{
  const int in = dims->size * dims->size, hid = dims->hidden, feat = dims->features;
  const REAL *w1 = params, *b1 = w1 + (size_t) hid * in;
  const REAL *w2 = b1 + hid, *b2 = w2 + (size_t) feat * hid;
  const REAL *w3 = b2 + feat, *b3 = w3 + (size_t) dims->classes * feat;
  size_t a1, h1, a2, h2, logits;

  FN (judge_layout) (dims, n, &a1, &h1, &a2, &h2, &logits);
  LAYER (tf_linear_forward) (acts + a1, input, w1, b1, n, in, hid);
  LAYER (tf_silu_forward) (acts + h1, acts + a1, n * hid);
  LAYER (tf_linear_forward) (acts + a2, acts + h1, w2, b2, n, hid, feat);
  LAYER (tf_silu_forward) (acts + h2, acts + a2, n * feat);
  LAYER (tf_linear_forward) (acts + logits, acts + h2, w3, b3, n, feat, dims->classes);
}

double
FN (tf_judge_backward) (const TfJudgeDims *dims, const REAL *params, const REAL *input, int n,
                        const REAL *acts, const int32_t *labels, REAL *grads, REAL *scratch)
{
  const int in = dims->size * dims->size, hid = dims->hidden, feat = dims->features;
  const int classes = dims->classes;
  const REAL *w2 = params + (size_t) hid * in + hid;
  const REAL *w3 = w2 + (size_t) feat * hid + feat;
  REAL *dw1 = grads, *db1 = dw1 + (size_t) hid * in;
  REAL *dw2 = db1 + hid, *db2 = dw2 + (size_t) feat * hid;
  REAL *dw3 = db2 + feat, *db3 = dw3 + (size_t) classes * feat;
  REAL *d_logits = scratch;
  REAL *d_h2 = d_logits + (size_t) n * classes;
  REAL *d_h1 = d_h2 + (size_t) n * feat;
  size_t a1, h1, a2, h2, logits;

  FN (judge_layout) (dims, n, &a1, &h1, &a2, &h2, &logits);
  /* The per-image losses go through d_logits before the gradient overwrites it. */
  double loss = LAYER (tf_cross_entropy_forward) (d_logits, acts + logits, labels, n, classes) / n;
  LAYER (tf_cross_entropy_backward) (d_logits, acts + logits, labels, n, classes, 1.0 / n);

  memset (d_h2, 0, sizeof (REAL) * (size_t) n * feat);
  LAYER (tf_linear_backward) (d_h2, dw3, db3, d_logits, acts + h2, w3, n, feat, classes);
  LAYER (tf_silu_backward) (d_h2, d_h2, acts + a2, n * feat);   /* now d_a2 */
  memset (d_h1, 0, sizeof (REAL) * (size_t) n * hid);
  LAYER (tf_linear_backward) (d_h1, dw2, db2, d_h2, acts + h1, w2, n, hid, feat);
  LAYER (tf_silu_backward) (d_h1, d_h1, acts + a1, n * hid);    /* now d_a1 */
  LAYER (tf_linear_backward) (NULL, dw1, db1, d_h1, input, params, n, in, hid);
  return loss;
}
