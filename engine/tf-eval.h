/* tf-eval.h: measuring a model on data it was never trained on (issue 7).
 *
 * Six sections, each on held-out data only:
 * - fashion: prompt → image for the ten Fashion-MNIST classes, from captions
 *   the training data writes ("seen" phrasings) and from phrasings it never
 *   writes ("unseen"), judged by the independent classifier of tf-judge.h;
 *   beside them the judge's accuracy on real t10k images (the ceiling) and the
 *   Fréchet distance of generated to real t10k images in the judge's feature
 *   space, with the distance of two disjoint real sets of the same size as
 *   the floor;
 * - caption: the share of t10k images whose greedy caption is, word for
 *   word, a caption of the right class in the source's own grammar
 *   (tf_data_fashion_caption_class());
 * - shapes: held-out scenes drawn from their captions, read back with
 *   tf_shapes_analyse(); the same analysis of the real renders is the ceiling;
 * - emoji: held-out (emoji, placement) prompts; the rank of the asked emoji
 *   among all emoji rendered at the same placement, by pixel distance to the
 *   generated image;
 * - text: bits per byte of held-out WordNet documents beside xz -9 and
 *   gzip -9 on the same bytes, and a few answers to "what is …?";
 * - steering: how much the caption steers denoising, without sampling:
 *   the ε-prediction error on held-out Fashion images noised to t, after the
 *   image's own caption, a caption of another class and no caption, with the
 *   same noise. A model that ignores its prompt has the three equal. The same
 *   on held-out shapes scenes with every shape word changed, where the shapes
 *   are: whether the words that name a shape steer its pixels. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "tf-generate.h"
#include "tf-judge.h"

G_BEGIN_DECLS

/* ---- Fréchet distance ------------------------------------------------- */

/* Eigen-decomposition of the symmetric n × n matrix @a (row-major; only
 * read) by cyclic Jacobi rotations: @values (n) and, when non-NULL, @vectors
 * (n × n, column k the eigenvector of values[k]). Converges to the accuracy
 * of double; returns FALSE if it did not within 100 sweeps. */
gboolean tf_symmetric_eigen (const double *a, int n, double *values, double *vectors);

/* Mean (dim) and covariance (dim × dim, divided by n − 1) of @n rows. */
void tf_mean_covariance (const float *rows, int n, int dim, double *mean, double *cov);

/* ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½, the square roots
 * from eigen-decompositions (negative eigenvalues of rounding clipped to 0).
 * Returns a negative number if a decomposition failed. */
double tf_frechet_distance (const double *mean1, const double *cov1, const double *mean2,
                            const double *cov2, int dim);

/* ---- Evaluation -------------------------------------------------------- */

typedef enum {
  TF_EVAL_FASHION = 1 << 0,
  TF_EVAL_CAPTION = 1 << 1,
  TF_EVAL_SHAPES = 1 << 2,
  TF_EVAL_EMOJI = 1 << 3,
  TF_EVAL_TEXT = 1 << 4,
  TF_EVAL_STEERING = 1 << 5,
  TF_EVAL_ALL = (1 << 6) - 1,
} TfEvalSections;

/* Prompt @k (any k ≥ 0; they repeat) of the fashion section's "unseen
 * phrasing" row for a class named @subject ("sneaker"): phrasings the
 * Fashion-MNIST source never writes. */
char *tf_eval_unseen_fashion_prompt (const char *subject, int k);
/* The same for one shape of @colour and @shape (TfShapeColour, TfShape),
 * without size or place ("one red circle", "just a blue star"). */
char *tf_eval_other_shape_prompt (int colour, int shape, int k);
#define TF_EVAL_N_UNSEEN_PHRASINGS 6

/* "fashion,caption" → flags; FALSE (and @error names the word) otherwise. */
gboolean tf_eval_sections_parse (const char *list, guint *sections, GError **error);

typedef struct {
  guint    sections;
  int      samples;        /* fashion: images per class and phrasing row;
                            * shapes, emoji: 10 × samples prompts;
                            * caption: 100 × samples t10k images */
  int      text_documents; /* held-out WordNet documents for bits per byte */
  int      answers;        /* "what is …?" answers printed */
  TfGenerateSettings settings;  /* steps, cfg, sampler, seed of every image */
  /* Called before each item: what is running ("fashion") and how far. */
  void   (*progress) (const char *section, int done, int total, gpointer user_data);
  gpointer user_data;
  /* Checked between items; the generator's own abort stops an image. */
  volatile gint *abort;
} TfEvalOptions;

void tf_eval_options_init (TfEvalOptions *options);

/* How far, in points, the true rate may lie from @part of @whole seen: the
 * farther end of the 95% Wilson interval (which, unlike p ± 1.96·se, is
 * not zero at 0% or 100%). 0 when @whole is 0. */
double tf_eval_interval95 (int part, int whole);

#define TF_EVAL_FASHION_CLASSES 10
/* The image settings tf_eval_sweep() tries: DDIM and DDPM, 25 and 50 steps,
 * guidance 2, 3 and 5. */
#define TF_EVAL_SWEEP_CANDIDATES 12
#define TF_EVAL_STEERING_LEVELS 4   /* t = 0.3, 0.5, 0.7, 0.9 of T */

typedef struct {
  char *prompt;
  char *answer;
} TfEvalAnswer;

/* One image an image section drew, and whether it came out as asked (the
 * judge's class; every object of a shapes scene; the emoji nearest). */
typedef struct {
  const char *section;   /* "fashion", "shapes", "emoji" (static) */
  char       *prompt;
  int         label;     /* the class asked: the Fashion class; for shapes, the
                          * TfShape every object of the scene has (else −1);
                          * −1 for emoji */
  gboolean    right;
} TfEvalDrawn;

typedef struct {
  guint sections;           /* the ones measured */
  /* fashion */
  int    fashion_n[2], fashion_right[2];   /* [0] seen phrasings, [1] unseen */
  int    fashion_judged[TF_EVAL_FASHION_CLASSES][TF_EVAL_FASHION_CLASSES];
                                           /* [asked][judged], both phrasings */
  char  *fashion_class[TF_EVAL_FASHION_CLASSES];   /* the classes' names */
  int    judge_real_n, judge_real_right;   /* all of t10k */
  int    frechet_n;                        /* images per set */
  double frechet_generated, frechet_floor;
  /* share of pixel values at 250/255 or more: the white blobs of a model
   * whose x0 estimate blows up, against the same share in real images */
  double saturated_generated, saturated_real;
  /* patch seams: tf_eval_seam_ratio of the generated images and of the
   * same number of real ones (about 1 when the grid does not show) */
  double seam_generated, seam_real;
  /* caption */
  int    caption_n, caption_exact;
  int    caption_exact_large;              /* the same pictures 4× larger (112 × 112) */
  char  *caption_example[2];               /* a caption and what it should name */
  /* shapes: scenes; objects asked; right per attribute; real renders the same */
  int    shapes_scenes, shapes_objects;
  int    shapes_colour, shapes_shape, shapes_count, shapes_position;
  int    shapes_real_colour, shapes_real_shape, shapes_real_count, shapes_real_position;
  /* the shape read right by the size asked (TF_SHAPE_SMALL, TF_SHAPE_LARGE):
   * whether small objects are the ones that fail */
  int    shapes_size_objects[2], shapes_size_shape[2], shapes_size_real_shape[2];
  /* one shape asked in words no training prompt uses, without size or place
   * ("one red circle"): drawn as one object, in that colour, of that shape */
  int    shapes_other_n, shapes_other_one, shapes_other_colour, shapes_other_shape;
  /* emoji */
  int    emoji_n, emoji_top1, emoji_top5, emoji_candidates;
  /* text */
  int    text_documents;
  int64_t text_bytes;
  double text_model_bits;
  double text_xz_bits, text_gzip_bits;     /* < 0: the tool was not found */
  GArray *answers;                         /* TfEvalAnswer */
  /* held-out "what is a X?" about drawable subjects (the subjects source):
   * answered with the gloss training taught for the word's other questions */
  int    gloss_n, gloss_right;
  TfEvalAnswer gloss_example;
  /* the chat topics' held-out phrasings ("thank you very much") answered,
   * greedily, with one of their topic's answers */
  int    chat_n, chat_right;
  TfEvalAnswer chat_example;   /* the first answered otherwise, if any */
  /* steering: mean squared ε error per noise level, after the right
   * caption [0], another class's [1] and none [2] */
  int    steering_n;                   /* images */
  int    steering_t[TF_EVAL_STEERING_LEVELS];
  double steering_mse[TF_EVAL_STEERING_LEVELS][3];
  /* the same on held-out shapes scenes, after their caption [0], the same
   * caption with every object another shape [1] and none [2], measured only
   * where the two scenes differ (colour models only; n 0 otherwise): whether
   * the shape words steer where the shapes are */
  int    steering_shape_n;
  double steering_shape_mse[TF_EVAL_STEERING_LEVELS][3];
  GArray *drawn;                       /* TfEvalDrawn, in the order drawn */
  double seconds;
  TfGemmBackend products;              /* what ran the matrix products */
  /* the image settings every section drew with */
  TfSampler sampler;
  int    steps;
  double cfg;
  /* tf_eval_sweep(): each candidate's image score, and the one chosen */
  int    sweep_n;
  double sweep_score[TF_EVAL_SWEEP_CANDIDATES];
  int    sweep_best;                   /* −1 without a sweep */
} TfEvalReport;

void tf_eval_report_clear (TfEvalReport *report);

/* Runs the sections of @options on @gen's model. The data come from their
 * Debian packages (tf_data_source_open (name, TF_SPLIT_HELDOUT, ...)). */
gboolean tf_eval_run (TfGenerator *gen, TfJudge *judge, const TfEvalOptions *options,
                      TfEvalReport *report, GError **error);

/* Sets the sampler, steps and guidance of @settings to candidate @k
 * (0 ≤ k < TF_EVAL_SWEEP_CANDIDATES). */
void tf_eval_sweep_candidate (int k, TfGenerateSettings *settings);

/* How well a report's images came out, one number to choose settings by:
 * the mean over the image sections measured (fashion, shapes, emoji) of
 * Fashion judged right (both phrasings), shapes colour and shape (their
 * mean) and emoji top-5, in percent; −1 when none of them was measured. */
double tf_eval_image_score (const TfEvalReport *report);

/* Chooses the image settings by measurement, then measures with them: the
 * image sections of @options (fashion, shapes, emoji; at least one) are run
 * at every candidate on the same prompts and noise, the candidate with the
 * best tf_eval_image_score() is kept (the first of equals: fewer steps), and
 * then every section of @options runs with it, as tf_eval_run() does. The
 * report holds each candidate's score and the one chosen; @options'
 * progress is told "sweep" before each candidate. */
gboolean tf_eval_sweep (TfGenerator *gen, TfJudge *judge, const TfEvalOptions *options,
                        TfEvalReport *report, GError **error);

/* The report as JSON: one object per section measured, each figure beside
 * its target from issue 7; "sampling", the image settings measured with
 * (tf_generate_settings_sampling_to_json()), and after a sweep "sweep",
 * each candidate's settings and score; then "examples"
 * (tf_eval_pick_examples, 8). */
char *tf_eval_report_to_json (const TfEvalReport *report);

/* Up to @n prompts the model drew as asked, for a person to try first: for
 * Fashion the classes it draws best (right at least half the time), one
 * prompt each, the shortest that came out right; shapes scenes of one shape
 * with every object right, of a shape whose scenes come out right at least
 * half the time, and emoji drawn nearest of all, shortest first; taken in
 * turns, Fashion first. NULL-terminated; empty when nothing came out. */
char **tf_eval_pick_examples (const TfEvalReport *report, int n);

/* Targets of issue 7, in percent (text: the model must beat xz). */
#define TF_EVAL_TARGET_FASHION 85.0
#define TF_EVAL_TARGET_CAPTION 88.0
#define TF_EVAL_TARGET_SHAPES_COLOUR 95.0
#define TF_EVAL_TARGET_SHAPES_SHAPE 90.0
#define TF_EVAL_TARGET_SHAPES_COUNT 90.0
#define TF_EVAL_TARGET_SHAPES_POSITION 90.0
#define TF_EVAL_TARGET_EMOJI_TOP1 50.0
#define TF_EVAL_TARGET_EMOJI_TOP5 75.0
#define TF_EVAL_TARGET_GLOSS 50.0

/* How much the @p × @p patch grid shows in @n images of [@size, @size,
 * @channels]: the mean absolute difference between neighbouring pixel
 * values across a border between patches, over the same mean between
 * neighbours inside a patch. About 1 for a picture that does not know the
 * grid; well above 1 when every patch is drawn on its own (the seams of
 * linear patches). Both means get 1e-6 added, so a blank image gives 1. */
double tf_eval_seam_ratio (const float *images, int n, int size, int channels, int p);

/* Whether a model's @answer to a held-out "what is a X?" is the gloss
 * @expected ("a X is GLOSS."), whole or up to its first ';'. */
gboolean tf_eval_gloss_matches (const char *answer, const char *expected);

G_END_DECLS
