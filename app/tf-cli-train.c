/* tf-cli-train.c: `transfusion-cli train` and `transfusion-cli data`. */
#include "config.h"

#include "tf-cli-private.h"

#include <inttypes.h>
#include <glib/gi18n.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "tf-data.h"
#include "tf-model-info.h"
#include "tf-train.h"

/* ---- train -------------------------------------------------------------- */

/* Set by the first Ctrl-C; the trainer saves and stops between steps. The
 * handler resets itself, so a second Ctrl-C ends the process at once. */
static volatile gint interrupted;

static void
on_interrupt (int signum)
{
  g_atomic_int_set (&interrupted, 1);
}

typedef struct {
  TfCli   *cli;
  gboolean tty;
  gint64   last_print;   /* monotonic µs */
} TrainReport;

static void
on_progress (const TfTrainProgress *p, gpointer user_data)
{
  TrainReport *r = user_data;
  gint64 now = g_get_monotonic_time ();
  /* A terminal gets a line rewritten in place; a log gets a line every 10 s. */
  gint64 every = r->tty ? 200000 : 10000000;
  if (p->step != p->steps && p->step != 1 && now - r->last_print < every)
    return;
  r->last_print = now;
  g_autofree char *elapsed = tf_format_duration (p->elapsed);
  g_autofree char *eta = tf_format_duration (p->eta);
  fprintf (r->cli->err,
           "%sstep %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT "  lm %.4f  ddpm %.4f  "
           "%.0f tok/s  pad %.1f%%  lr %.2e  elapsed %s  eta %s%s",
           r->tty ? "\r\033[K" : "", p->step, p->steps, p->lm, p->ddpm, p->tokens_per_second,
           100.0 * p->padding, p->lr, elapsed, eta, r->tty ? "" : "\n");
  fflush (r->cli->err);
}

static gboolean
parse_weights (const char *text, guint n_data, double **out, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  if (g_strv_length (parts) != n_data)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--weights has %u values but --data has %u entries"),
                   g_strv_length (parts), n_data);
      return FALSE;
    }
  *out = g_new (double, n_data);
  for (guint i = 0; i < n_data; i++)
    {
      char *end;
      (*out)[i] = g_ascii_strtod (parts[i], &end);
      if (*end != '\0' || end == parts[i] || !isfinite ((*out)[i]) || (*out)[i] < 0)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--weights: '%s' is not a weight ≥ 0"), parts[i]);
          return FALSE;
        }
    }
  return TRUE;
}

/* The preset whose shape the model at @path has. */
static char *
preset_of_model (const char *path, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  if (st == NULL)
    return NULL;
  const char *json = tf_safetensors_metadata (st, "config");
  TfConfig config;
  if (json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, _("%s: __metadata__ has no 'config'"), path);
      return NULL;
    }
  if (!tf_config_from_json (&config, json, path, error))
    return NULL;
  const char *name = tf_config_preset_of (&config);
  if (name == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   _("%s (d %d, %d layers) has the shape of no preset (tiny, small, default, large)"),
                   path, config.d_model, config.n_layers);
      return NULL;
    }
  return g_strdup (name);
}

int
tf_cli_train (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s train [OPTION…] --out MODEL.safetensors", PROGRAM);
  TfTrainOptions o;
  tf_train_options_init (&o);
  g_autofree char *preset = NULL, *data = NULL, *weights = NULL, *out = NULL;
  g_autofree char *seed = NULL, *init_from = NULL;
  g_autofree char *prediction = NULL, *t_sampling = NULL, *time_conditioning = NULL;
  g_autofree char *t_mean = NULL, *t_scale = NULL, *min_snr = NULL;
  g_autofree char *image_encoder = NULL, *unet_channels = NULL, *unet_blocks = NULL,
                    *unet_skips = NULL, *conv_channels = NULL, *image_rope = NULL;
  g_autofree char *precision_text = NULL;
  /* Options left out keep these values: the defaults, or with --resume what
   * the run was started with. */
  const gint64 unset64 = G_MININT64;
  const int unset = G_MININT;
  gint64 steps = unset64, warmup = unset64, save_steps = 0, max_examples = unset64, until = 0;
  int batch = unset, vocab = unset;
  double lr = NAN, save_every = o.save_every_minutes, image_first = NAN;
  double cfg_drop = NAN, chat = NAN, lambda = NAN, decay = NAN;
  gboolean resume = FALSE;
  const GOptionEntry entries[] = {
    { "preset", 0, 0, G_OPTION_ARG_STRING, &preset, N_("Model size: tiny, small, default or large (small)"), N_("NAME") },
    { "data", 0, 0, G_OPTION_ARG_STRING, &data, N_("Comma-separated: fashion, emoji, shapes, wordnet, subjects, chat, or folders (the first four)"), N_("LIST") },
    { "weights", 0, 0, G_OPTION_ARG_STRING, &weights, N_("Mixing weight of each --data entry (1 each)"), N_("LIST") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Where to write the model (.safetensors)"), N_("FILE") },
    { "steps", 0, 0, G_OPTION_ARG_INT64, &steps, N_("Optimizer steps in all (1000)"), N_("N") },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch, N_("Sequences per step (8)"), N_("B") },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &lr, N_("Peak learning rate (0.001)"), N_("X") },
    { "decay", 0, 0, G_OPTION_ARG_DOUBLE, &decay, N_("0: the rate decays as a cosine from the warm-up on (0); F: it holds its peak, then decays linearly over the last F of the steps, so that --resume --steps can lengthen the run until then"), N_("F") },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed, N_("Seed of every random choice (1)"), N_("S") },
    { "save-every", 0, 0, G_OPTION_ARG_DOUBLE, &save_every, N_("Save every so many minutes; fractions allowed (5)"), N_("MINUTES") },
    { "save-every-steps", 0, 0, G_OPTION_ARG_INT64, &save_steps, N_("Also save every N steps"), N_("N") },
    { "until-step", 0, 0, G_OPTION_ARG_INT64, &until, N_("Stop and save at step N; --resume goes on later (the schedule still spans --steps)"), N_("N") },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &resume, N_("Continue the run saved beside --out, exactly, with the options it was started with"), NULL },
    { "init-from", 0, 0, G_OPTION_ARG_FILENAME, &init_from, N_("Start a new run from this model's weights and tokenizer (a warm restart)"), N_("MODEL") },
    { "vocab", 0, 0, G_OPTION_ARG_INT, &vocab, N_("Tokenizer vocabulary for a new run (by preset)"), N_("N") },
    /* xgettext:no-c-format */
    { "warmup", 0, 0, G_OPTION_ARG_INT64, &warmup, N_("Warm-up steps (5% of steps, at most 1000)"), N_("N") },
    { "image-first", 0, 0, G_OPTION_ARG_DOUBLE, &image_first, N_("Fraction of pairs with the image first (0.2)"), N_("F") },
    { "cfg-drop", 0, 0, G_OPTION_ARG_DOUBLE, &cfg_drop, N_("Fraction of captions dropped for guidance (0.1)"), N_("F") },
    { "chat", 0, 0, G_OPTION_ARG_DOUBLE, &chat, N_("Fraction of examples in the chat template (0.25)"), N_("F") },
    { "lambda", 0, 0, G_OPTION_ARG_DOUBLE, &lambda, N_("Weight of the diffusion loss (5)"), N_("X") },
    { "max-examples", 0, 0, G_OPTION_ARG_INT64, &max_examples, N_("Use only the first N examples of each source"), N_("N") },
    { "prediction", 0, 0, G_OPTION_ARG_STRING, &prediction, N_("What the image head predicts: eps, v or x (the preset's)"), N_("TARGET") },
    { "t-sampling", 0, 0, G_OPTION_ARG_STRING, &t_sampling, N_("How training draws noise levels: uniform or logit_normal (the preset's)"), N_("NAME") },
    { "t-mean", 0, 0, G_OPTION_ARG_STRING, &t_mean, N_("Logit-normal location (0)"), N_("X") },
    { "t-scale", 0, 0, G_OPTION_ARG_STRING, &t_scale, N_("Logit-normal scale (1)"), N_("X") },
    { "min-snr-gamma", 0, 0, G_OPTION_ARG_STRING, &min_snr, N_("Min-SNR-γ loss weights with this γ; 0 turns them off (the preset's)"), N_("G") },
    { "time-conditioning", 0, 0, G_OPTION_ARG_STRING, &time_conditioning, N_("How images get the timestep: add or adaln_zero (the preset's)"), N_("NAME") },
    { "image-encoder", 0, 0, G_OPTION_ARG_STRING, &image_encoder, N_("How pixels become tokens and back: linear, unet or conv (the preset's)"), N_("NAME") },
    { "unet-channels", 0, 0, G_OPTION_ARG_STRING, &unet_channels, N_("U-Net channels at every level (32)"), N_("N") },
    { "unet-blocks", 0, 0, G_OPTION_ARG_STRING, &unet_blocks, N_("U-Net residual blocks per level (1)"), N_("N") },
    { "unet-skips", 0, 0, G_OPTION_ARG_STRING, &unet_skips, N_("U-Net: add each encoder level into the decoder's (true), or draw through the transformer alone (false)"), N_("true|false") },
    { "conv-channels", 0, 0, G_OPTION_ARG_STRING, &conv_channels, N_("Conv encoder: channels of its 3×3 convolutions before and after the patches (16)"), N_("N") },
    { "image-rope", 0, 0, G_OPTION_ARG_STRING, &image_rope, N_("RoPE positions of image patches: 1d (their index in the document) or axial (their grid row and column) (the preset's)"), N_("1d|axial") },
    TF_CLI_PRECISION_ENTRY (precision_text),
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Writes the model (EMA weights) to --out and the training state beside it\n"
        "(.state.safetensors) every few minutes and at the end, atomically, and a log\n"
        "of every step (.log.jsonl). Ctrl-C saves and stops; --resume continues the\n"
        "run bit for bit."));
  g_auto (GStrv) operands = NULL;
  int status = tf_cli_parse_options (cli, line, usage, summary, entries, FALSE, argc, argv,
                                     &operands);
  if (status >= 0)
    {
      tf_train_options_clear (&o);
      return status;
    }
  if (operands[0] != NULL || out == NULL)
    {
      tf_train_options_clear (&o);
      return operands[0] != NULL ? tf_cli_unexpected_argument (cli, line, operands[0])
                                 : tf_cli_usage_error (cli, line, _("no --out model file given"));
    }

  g_autoptr (GError) error = NULL;
  if (resume && init_from == NULL && !tf_train_options_load_saved (&o, out, &error))
    {
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      tf_train_options_clear (&o);
      return TF_CLI_EXIT_FAILURE;
    }
  /* The schedule as saved, to say what a new --steps does to it (a copy of
   * the numbers: its pointers are not used). */
  const TfTrainOptions schedule_saved = o;
  /* A warm restart takes the size of the model it starts from. */
  if (preset == NULL && init_from != NULL && !resume)
    {
      preset = preset_of_model (init_from, &error);
      if (preset == NULL)
        {
          fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
          tf_train_options_clear (&o);
          return TF_CLI_EXIT_FAILURE;
        }
    }
  /* Given, it replaces what a resumed run was started with; a new run
   * without it takes auto, as every command does. */
  if (precision_text == NULL && !(resume && init_from == NULL))
    o.precision = TF_PRECISION_AUTO;
  if (precision_text != NULL &&
      (status = tf_cli_precision (cli, line, precision_text, &o.precision)) >= 0)
    {
      tf_train_options_clear (&o);
      return status;
    }
  if (preset)
    {
      g_free (o.preset);
      o.preset = g_strdup (preset);
    }
  if (data)
    {
      g_strfreev (o.data);
      o.data = g_strsplit (data, ",", -1);
    }
  if (weights && !parse_weights (weights, g_strv_length (o.data), &o.weights, &error))
    {
      fprintf (cli->err, "%s: %s\n", line, error->message);
      tf_train_options_clear (&o);
      return TF_CLI_EXIT_USAGE;
    }
  if (seed && !g_ascii_string_to_unsigned (seed, 10, 0, G_MAXUINT64, &o.seed, &error))
    {
      fprintf (cli->err, "%s: --seed: %s\n", line, error->message);
      tf_train_options_clear (&o);
      return TF_CLI_EXIT_USAGE;
    }
  /* The image side's recipe, in one string that the run's identity keeps. */
  {
    const struct { const char *key, *value; } fields[] = {
      { "prediction", prediction }, { "t_sampling", t_sampling }, { "t_mean", t_mean },
      { "t_scale", t_scale }, { "min_snr_gamma", min_snr },
      { "time_conditioning", time_conditioning }, { "image_encoder", image_encoder },
      { "unet_channels", unet_channels }, { "unet_blocks", unet_blocks },
      { "unet_skips", unet_skips }, { "conv_channels", conv_channels },
      { "image_rope", image_rope },
    };
    g_autoptr (GString) recipe = g_string_new (NULL);
    TfConfig check;
    tf_config_preset (&check, "tiny", NULL);
    for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
      if (fields[i].value != NULL)
        {
          if (!tf_config_set_recipe_field (&check, fields[i].key, fields[i].value, &error) ||
              strchr (fields[i].value, ',') != NULL)
            {
              fprintf (cli->err, "%s: --%s: %s\n", line, fields[i].key,
                       error ? error->message : _("a value has no commas"));
              tf_train_options_clear (&o);
              return TF_CLI_EXIT_USAGE;
            }
          g_string_append_printf (recipe, "%s%s=%s", recipe->len ? "," : "", fields[i].key,
                                  fields[i].value);
        }
    if (recipe->len > 0)
      {
        if (resume && g_strcmp0 (recipe->str, o.recipe) != 0)
          {
            fprintf (cli->err, _("%s: --resume continues the run with its own recipe (%s); "
                                 "leave out --prediction and the like, or start a new run\n"),
                     line, o.recipe && *o.recipe ? o.recipe : _("the preset's"));
            tf_train_options_clear (&o);
            return TF_CLI_EXIT_USAGE;
          }
        g_free (o.recipe);
        o.recipe = g_string_free (g_steal_pointer (&recipe), FALSE);
      }
  }
  o.out = g_strdup (out);
  o.save_every_minutes = save_every;
  o.save_every_steps = save_steps;
  o.until_step = until;
  o.resume = resume;
  o.init_from = g_steal_pointer (&init_from);
#define GIVEN(field, value, unset_value) if ((value) != (unset_value)) o.field = (value);
#define GIVEN_DOUBLE(field, value) if (!isnan (value)) o.field = (value);
  GIVEN (steps, steps, unset64)
  GIVEN (batch, batch, unset)
  GIVEN (vocab_size, vocab, unset)
  GIVEN (warmup_steps, warmup, unset64)
  GIVEN (max_examples, max_examples, unset64)
  GIVEN_DOUBLE (lr, lr)
  GIVEN_DOUBLE (decay_fraction, decay)
  GIVEN_DOUBLE (image_first, image_first)
  GIVEN_DOUBLE (cfg_drop, cfg_drop)
  GIVEN_DOUBLE (chat_fraction, chat)
  GIVEN_DOUBLE (lambda, lambda)
#undef GIVEN
#undef GIVEN_DOUBLE

  const TfTrainOptions schedule_now = o;
  g_autoptr (TfTrainer) trainer = tf_trainer_new (&o, &error);
  tf_train_options_clear (&o);
  if (trainer == NULL)
    {
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      return TF_CLI_EXIT_FAILURE;
    }
  const TfConfig *c = tf_model_config (tf_trainer_model (trainer));
  fprintf (cli->err, _("%s %s: %zu parameters (d %d, %d layers, %d heads, vocabulary %d), "
                       "from step %" PRId64 "\n"),
           tf_trainer_step (trainer) > 0 ? _("resuming") : _("training"), out,
           tf_model_n_params (tf_trainer_model (trainer)), c->d_model, c->n_layers, c->n_heads,
           c->vocab_size, tf_trainer_step (trainer));
  fprintf (cli->err, _("images: %s prediction, %s noise levels, %s timestep, %s RoPE%s\n"),
           tf_prediction_name (c->prediction), tf_t_sampling_name (c->t_sampling),
           tf_time_conditioning_name (c->time_conditioning), tf_image_rope_name (c->image_rope),
           c->min_snr_gamma > 0 ? _(", Min-SNR-γ weights") : "");
  if (c->image_encoder == TF_IMAGE_ENCODER_UNET)
    fprintf (cli->err, c->unet_skips
                       ? _("image encoder: U-Net, %d channels, %d blocks per level, %d levels\n")
                       : _("image encoder: U-Net, %d channels, %d blocks per level, %d levels, "
                           "no skips\n"),
             c->unet_channels, c->unet_blocks, tf_config_unet_levels (c));
  else if (c->image_encoder == TF_IMAGE_ENCODER_CONV)
    fprintf (cli->err, _("image encoder: linear patches between 3×3 convolutions of %d channels\n"),
             c->conv_channels);
  fprintf (cli->err, _("matrix products: %s\n"),
           tf_gemm_backend_name (tf_trainer_backend (trainer)));
  if (resume && schedule_now.steps != schedule_saved.steps)
    {
      const int64_t at = tf_trainer_step (trainer);
      const double before = tf_train_learning_rate (&schedule_saved, at);
      const double now = tf_train_learning_rate (&schedule_now, at);
      fprintf (cli->err, _("the schedule now spans %" PRId64 " steps (it spanned %" PRId64 ")\n"),
               schedule_now.steps, schedule_saved.steps);
      if (fabs (now - before) > 1e-9 * before)
        fprintf (cli->err, _("%s: warning: the learning rate of step %" PRId64 " moves from %g "
                             "to %g: the run does not go on smoothly (with --decay, lengthen "
                             "it before its decay begins)\n"),
                 PROGRAM, at + 1, before, now);
    }

  struct sigaction action = { 0 }, previous;
  action.sa_handler = on_interrupt;
  action.sa_flags = SA_RESETHAND;
  sigemptyset (&action.sa_mask);
  g_atomic_int_set (&interrupted, 0);
  sigaction (SIGINT, &action, &previous);

  TrainReport report = { cli, isatty (fileno (cli->err)), 0 };
  gboolean ok = tf_trainer_run (trainer, on_progress, &report, &interrupted, &error);
  sigaction (SIGINT, &previous, NULL);
  if (report.tty)
    fputc ('\n', cli->err);
  if (!ok)
    {
      gboolean stopped = g_error_matches (error, TF_ERROR, TF_ERROR_ABORTED);
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      return stopped ? TF_CLI_EXIT_OK : TF_CLI_EXIT_FAILURE;
    }
  fprintf (cli->err, _("saved %s after %" PRId64 " steps\n"), out,
           tf_trainer_step (trainer));
  return TF_CLI_EXIT_OK;
}

/* ---- data --------------------------------------------------------------- */

int
tf_cli_data (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s data [OPTION…] --preview FILE.png | --export DIR", PROGRAM);
  g_autofree char *data = NULL, *preview = NULL, *split = NULL, *seed_text = NULL;
  g_autofree char *export_dir = NULL, *tokenizer = NULL;
  int count = 8, scale = 3;
  const GOptionEntry entries[] = {
    { "preview", 0, 0, G_OPTION_ARG_FILENAME, &preview, N_("Write a contact sheet of samples to FILE.png"), N_("FILE") },
    { "data", 0, 0, G_OPTION_ARG_STRING, &data, N_("Comma-separated: fashion, emoji, shapes, wordnet, subjects, chat, or folders (the first four)"), N_("LIST") },
    { "count", 'n', 0, G_OPTION_ARG_INT, &count, N_("Samples per source (8)"), N_("N") },
    { "scale", 0, 0, G_OPTION_ARG_INT, &scale, N_("Pixel scale of the images (3)"), N_("N") },
    { "split", 0, 0, G_OPTION_ARG_STRING, &split, N_("train or heldout (train)"), N_("NAME") },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed_text, N_("Which samples (1)"), N_("S") },
    { "export", 0, 0, G_OPTION_ARG_FILENAME, &export_dir, N_("Write the first --count examples of each source to DIR/NAME.safetensors"), N_("DIR") },
    { "tokenizer", 0, 0, G_OPTION_ARG_FILENAME, &tokenizer, N_("With --export: also the token ids of every text, by this model's tokenizer"), N_("MODEL") },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Draws samples from each source as training sees them (image and caption, or\n"
        "question and answer) and writes them as one PNG, with the number of examples\n"
        "of each source printed."));
  g_auto (GStrv) operands = NULL;
  int status = tf_cli_parse_options (cli, line, usage, summary, entries, FALSE, argc, argv,
                                     &operands);
  if (status >= 0)
    return status;
  TfSplit which = TF_SPLIT_TRAIN;
  guint64 seed = 1;
  if (split != NULL && strcmp (split, "heldout") == 0)
    which = TF_SPLIT_HELDOUT;
  if (export_dir != NULL && preview == NULL && operands[0] == NULL && count >= 1 &&
      (split == NULL || which == TF_SPLIT_HELDOUT || strcmp (split, "train") == 0) &&
      (seed_text == NULL || g_ascii_string_to_unsigned (seed_text, 10, 0, G_MAXUINT64, &seed, NULL)))
    {
      g_auto (GStrv) names = g_strsplit (data ? data : "fashion,emoji,shapes,wordnet", ",", -1);
      return tf_cli_data_export (cli, names, which, seed, count, export_dir, tokenizer);
    }
  if ((split != NULL && which == TF_SPLIT_TRAIN && strcmp (split, "train") != 0) ||
      preview == NULL || export_dir != NULL || tokenizer != NULL || operands[0] != NULL ||
      count < 1 || count > 256 || scale < 1 ||
      scale > 16 || (seed_text && !g_ascii_string_to_unsigned (seed_text, 10, 0, G_MAXUINT64,
                                                                &seed, NULL)))
    return tf_cli_usage_error (cli, line, _("give --preview FILE.png (--count 1 to 256, "
                                            "--scale 1 to 16) or --export DIR, and --split "
                                            "train or heldout"));

  g_auto (GStrv) names = g_strsplit (data ? data : "fashion,emoji,shapes,wordnet", ",", -1);
  TfConfig c;
  tf_config_preset (&c, "default", NULL);
  g_autoptr (GArray) examples = g_array_new (FALSE, TRUE, sizeof (TfExample));
  g_array_set_clear_func (examples, (GDestroyNotify) tf_example_clear);
  TfRng rng;
  tf_rng_seed (&rng, seed);
  for (guint i = 0; names[i] != NULL; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (TfDataSource) source = tf_data_source_open (names[i], which, c.image_size,
                                                             c.image_channels, &error);
      if (source == NULL)
        {
          fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
          return TF_CLI_EXIT_FAILURE;
        }
      fprintf (cli->out, "%-10s %" G_GINT64_FORMAT " examples (%s)\n",
               tf_data_source_name (source), tf_data_source_size (source),
               which == TF_SPLIT_TRAIN ? "train" : "held out");
      for (int k = 0; k < count; k++)
        {
          TfExample ex = { 0 };
          int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (source));
          if (!tf_data_source_get (source, index, &rng, &ex, &error))
            {
              fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
              return TF_CLI_EXIT_FAILURE;
            }
          g_array_append_val (examples, ex);
        }
    }
  g_autoptr (GError) error = NULL;
  if (!tf_data_write_contact_sheet ((TfExample *) examples->data, (int) examples->len, scale,
                                    preview, &error))
    {
      fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
      return TF_CLI_EXIT_FAILURE;
    }
  fprintf (cli->out, _("wrote %s (%u samples)\n"), preview, examples->len);
  return TF_CLI_EXIT_OK;
}
