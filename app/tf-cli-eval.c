/* tf-cli-eval.c: `transfusion-cli eval` (the measurements of issue 7) and
 * `transfusion-cli judge-train` (the classifier that eval judges generated
 * Fashion-MNIST images with).
 *
 * Results go to stdout (the table, or JSON with --json); progress and
 * messages go to stderr. Ctrl-C stops within an image or a token and exits
 * with status 1. */
#include "config.h"

#include "tf-cli-private.h"

#include <inttypes.h>
#include <glib/gi18n.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tf-data-shapes.h"
#include "tf-eval.h"
#include "tf-model-info.h"
#include "tf-judge.h"

#define DEFAULT_JUDGE "resources/judge/fashion-judge.safetensors"

/* ---- Progress ----------------------------------------------------------- */

typedef struct {
  FILE       *err;
  gboolean    tty;
  const char *section;
  gint64      start;
} EvalProgress;

static void
on_progress (const char *section, int done, int total, gpointer user_data)
{
  EvalProgress *p = user_data;

  if (strcmp (section, "sweep") == 0)
    {
      /* one line per setting tried; its sections report as usual after it */
      if (p->tty && p->section != NULL)
        fputc ('\n', p->err);
      p->section = NULL;
      fprintf (p->err, _("eval: sweep, setting %d of %d…\n"), done + 1, total);
      fflush (p->err);
      return;
    }
  if (p->section == NULL || strcmp (p->section, section) != 0)
    {
      if (p->tty && p->section != NULL)
        fputc ('\n', p->err);
      p->section = section;
      if (!p->tty)
        fprintf (p->err, _("eval: %s (%d items)…\n"), section, total);
    }
  if (p->tty)
    fprintf (p->err, "\r\033[Keval: %s %d/%d  %.0f s", section, done + 1, total,
             (double) (g_get_monotonic_time () - p->start) / G_USEC_PER_SEC);
  fflush (p->err);
}

/* ---- The table ---------------------------------------------------------- */

static double
pc (int part, int whole)
{
  return whole > 0 ? 100.0 * part / whole : 0.0;
}

/* @text in a column of @width characters (not bytes: "é", "≥"), on the
 * left or, with @right, on the right. */
static void
column (FILE *out, const char *text, int width, gboolean right)
{
  const int pad = MAX (0, width - (int) g_utf8_strlen (text, -1));

  if (right)
    fprintf (out, "%*s%s", pad, "", text);
  else
    fprintf (out, "%s%*s", text, pad, "");
}

static void
row (FILE *out, const char *section, const char *measure, const char *value,
     const char *target, const char *note)
{
  column (out, section, 8, FALSE);
  fputc (' ', out);
  column (out, measure, 36, FALSE);
  column (out, value, 13, TRUE);
  fputs ("  ", out);
  column (out, target, 9, FALSE);
  fprintf (out, "%s\n", note);
}

/* A percentage with its noise beside its target: "85.0% ±7.1  ≥85% yes". */
static void
row_percent (FILE *out, const char *section, const char *measure, int part, int whole,
             double target, const char *note)
{
  g_autofree char *value = g_strdup_printf ("%.1f%% ±%.1f", pc (part, whole),
                                            tf_eval_interval95 (part, whole));
  g_autofree char *goal = target >= 0
    ? g_strdup_printf ("≥%.0f%% %s", target, pc (part, whole) >= target ? _("yes") : _("no"))
    : g_strdup ("");
  row (out, section, measure, value, goal, note);
}

/* Each candidate of a sweep and its score; the chosen one marked. */
static void
print_sweep (FILE *out, const TfEvalReport *r)
{
  fprintf (out, _("Image settings tried (score: the mean of Fashion judged right, shapes colour "
                  "and shape, emoji top-5)\n\n"));
  for (int k = 0; k < r->sweep_n; k++)
    {
      TfGenerateSettings s;
      tf_generate_settings_init (&s);
      tf_eval_sweep_candidate (k, &s);
      fprintf (out, "  %s %2d steps, guidance %g   %5.1f%s\n", tf_sampler_name (s.sampler),
               s.steps, s.cfg, r->sweep_score[k], k == r->sweep_best ? _("  ← chosen") : "");
    }
  fputc ('\n', out);
}

static void
print_table (FILE *out, const TfEvalReport *r, const char *model, const TfEvalOptions *o)
{
  fprintf (out, _("Evaluation of %s on held-out data (%d steps %s, guidance %g, seed %"
                  PRIu64 ", matrix products %s)\n\n"), model, r->steps,
           tf_sampler_name (r->sampler), r->cfg, (guint64) o->settings.seed,
           tf_gemm_backend_name (r->products));
  row (out, _("section"), _("measure"), _("value"), _("target"), _("reference"));
  if (r->sections & TF_EVAL_FASHION)
    {
      g_autofree char *n = g_strdup_printf (_("%d images"), r->fashion_n[0]);
      g_autofree char *n2 = g_strdup_printf (_("%d images"), r->fashion_n[1]);
      g_autofree char *ceiling = g_strdup_printf (_("ceiling; %d real images"), r->judge_real_n);
      g_autofree char *fd = g_strdup_printf ("%.2f", r->frechet_generated);
      g_autofree char *floor = g_strdup_printf (_("floor (real vs real): %.2f; %d per set"),
                                                r->frechet_floor, r->frechet_n);
      row_percent (out, "fashion", _("judged the asked class, seen phrasing"), r->fashion_right[0],
                   r->fashion_n[0], TF_EVAL_TARGET_FASHION, n);
      row_percent (out, "", _("the same, unseen phrasing"), r->fashion_right[1],
                   r->fashion_n[1], TF_EVAL_TARGET_FASHION, n2);
      row_percent (out, "", _("judge on real t10k images"), r->judge_real_right, r->judge_real_n,
                   -1, ceiling);
      row (out, "", _("Fréchet distance (judge features)"), fd, "", floor);
      g_autofree char *sat = g_strdup_printf ("%.1f%%", r->saturated_generated);
      g_autofree char *sat_real = g_strdup_printf (_("real images: %.1f%%"), r->saturated_real);
      row (out, "", _("pixels at 250/255 or brighter"), sat, "", sat_real);
      g_autofree char *seam = g_strdup_printf ("%.2f", r->seam_generated);
      g_autofree char *seam_real = g_strdup_printf (_("real images: %.2f; 1 when the patch grid "
                                                      "does not show"), r->seam_real);
      row (out, "", _("patch seams (step across / inside)"), seam, "", seam_real);
      /* What the judge saw most often, over every asked class: a model that
       * draws one kind of thing whatever it is asked shows here. */
      int judged[TF_EVAL_FASHION_CLASSES] = { 0 }, total = 0;
      for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
        for (int j = 0; j < TF_EVAL_FASHION_CLASSES; j++)
          judged[j] += r->fashion_judged[c][j], total += r->fashion_judged[c][j];
      g_autoptr (GString) most = g_string_new (NULL);
      for (int rank = 0; rank < 3 && total > 0; rank++)
        {
          int best = 0;
          for (int j = 1; j < TF_EVAL_FASHION_CLASSES; j++)
            if (judged[j] > judged[best])
              best = j;
          if (judged[best] == 0)
            break;
          g_string_append_printf (most, "%s%s %.0f%%", rank > 0 ? ", " : "",
                                  r->fashion_class[best] != NULL ? r->fashion_class[best] : "?",
                                  pc (judged[best], total));
          judged[best] = -1;
        }
      row (out, "", _("judged as, most often"), "", "", most->str);
    }
  if (r->sections & TF_EVAL_CAPTION)
    {
      g_autofree char *note = g_strdup_printf (_("%d t10k images; e.g. \"%s\" (class: %s)"),
                                               r->caption_n, r->caption_example[0],
                                               r->caption_example[1]);
      row_percent (out, "caption", _("exact class"), r->caption_exact, r->caption_n,
                   TF_EVAL_TARGET_CAPTION, note);
      row_percent (out, "", _("exact class, the PNGs 4× larger"), r->caption_exact_large,
                   r->caption_n, -1, "");
    }
  if (r->sections & TF_EVAL_SHAPES)
    {
      struct { const char *name; int got, real, whole; double target; } m[] = {
        { N_("colour"), r->shapes_colour, r->shapes_real_colour, r->shapes_objects,
          TF_EVAL_TARGET_SHAPES_COLOUR },
        { N_("shape"), r->shapes_shape, r->shapes_real_shape, r->shapes_objects,
          TF_EVAL_TARGET_SHAPES_SHAPE },
        { N_("count"), r->shapes_count, r->shapes_real_count, r->shapes_scenes,
          TF_EVAL_TARGET_SHAPES_COUNT },
        { N_("position"), r->shapes_position, r->shapes_real_position, r->shapes_objects,
          TF_EVAL_TARGET_SHAPES_POSITION },
      };
      for (guint i = 0; i < G_N_ELEMENTS (m); i++)
        {
          g_autofree char *note = g_strdup_printf (_("real renders read back: %.1f%%"),
                                                   pc (m[i].real, m[i].whole));
          row_percent (out, i == 0 ? "shapes" : "", _(m[i].name), m[i].got, m[i].whole,
                       m[i].target, note);
        }
      for (int z = TF_SHAPES_N_SIZES - 1; z >= 0; z--)
        {
          /* Translators: beside the shape of large or small objects, "real renders read
           * back: 96.3%; 54 objects" */
          g_autofree char *note = g_strdup_printf (_("real renders read back: %.1f%%; %d objects"),
                                                   pc (r->shapes_size_real_shape[z],
                                                       r->shapes_size_objects[z]),
                                                   r->shapes_size_objects[z]);
          row_percent (out, "", z == TF_SHAPE_LARGE ? _("shape, large objects")
                                                    : _("shape, small objects"),
                       r->shapes_size_shape[z], r->shapes_size_objects[z], -1, note);
        }
      fprintf (out, _("         (%d held-out scenes, %d objects)\n"), r->shapes_scenes,
               r->shapes_objects);
      g_autofree char *note = g_strdup_printf (_("%d prompts such as \"one red circle\"; "
                                                 "one object drawn: %.1f%%"),
                                               r->shapes_other_n,
                                               pc (r->shapes_other_one, r->shapes_other_n));
      row_percent (out, "", _("one shape, other words: colour"), r->shapes_other_colour,
                   r->shapes_other_n, TF_EVAL_TARGET_SHAPES_COLOUR, note);
      row_percent (out, "", _("one shape, other words: shape"), r->shapes_other_shape,
                   r->shapes_other_n, TF_EVAL_TARGET_SHAPES_SHAPE, "");
    }
  if (r->sections & TF_EVAL_EMOJI)
    {
      g_autofree char *note = g_strdup_printf (_("%d prompts, %d emoji to choose from"),
                                               r->emoji_n, r->emoji_candidates);
      row_percent (out, "emoji", _("nearest emoji is the asked one"), r->emoji_top1, r->emoji_n,
                   TF_EVAL_TARGET_EMOJI_TOP1, note);
      row_percent (out, "", _("asked one among the nearest 5"), r->emoji_top5, r->emoji_n,
                   TF_EVAL_TARGET_EMOJI_TOP5, "");
    }
  if (r->sections & TF_EVAL_TEXT)
    {
      const double bytes = MAX (r->text_bytes, 1);
      g_autofree char *value = g_strdup_printf ("%.3f", r->text_model_bits / bytes);
      g_autofree char *xz = r->text_xz_bits >= 0 ? g_strdup_printf ("%.3f", r->text_xz_bits / bytes)
                                                 : g_strdup (_("xz not installed"));
      g_autofree char *gz = r->text_gzip_bits >= 0
        ? g_strdup_printf ("%.3f", r->text_gzip_bits / bytes) : g_strdup (_("gzip not installed"));
      g_autofree char *goal = r->text_xz_bits >= 0
        ? g_strdup_printf ("<xz %s", r->text_model_bits < r->text_xz_bits ? _("yes") : _("no"))
        : g_strdup ("<xz ?");
      g_autofree char *note = g_strdup_printf (_("xz -9: %s, gzip -9: %s; %d documents, %"
                                                 PRId64 " bytes"), xz, gz,
                                               r->text_documents, r->text_bytes);
      row (out, "text", _("bits per byte"), value, goal, note);
      g_autofree char *gloss_note = g_strdup_printf (
        _("%d held-out questions about drawable subjects; e.g. \"%s\" → \"%s\""), r->gloss_n,
        r->gloss_example.prompt ? r->gloss_example.prompt : "",
        r->gloss_example.answer ? r->gloss_example.answer : "");
      row_percent (out, "", _("\"what is a X?\" answered with its gloss"), r->gloss_right,
                   r->gloss_n, TF_EVAL_TARGET_GLOSS, gloss_note);
      g_autofree char *chat_note =
        r->chat_example.prompt != NULL
          ? g_strdup_printf (_("%d held-out chat phrasings; missed: \"%s\" → \"%s\""),
                             r->chat_n, r->chat_example.prompt, r->chat_example.answer)
          : g_strdup_printf (_("%d held-out chat phrasings"), r->chat_n);
      row_percent (out, "", _("chat: answered as its topic"), r->chat_right, r->chat_n, -1,
                   chat_note);
      for (guint i = 0; r->answers != NULL && i < r->answers->len; i++)
        {
          const TfEvalAnswer *a = &g_array_index (r->answers, TfEvalAnswer, i);
          fprintf (out, "         > %s\n           %s\n", a->prompt, a->answer);
        }
    }
  if (r->sections & TF_EVAL_STEERING)
    {
      /* Fashion images, then shapes scenes where the shapes are (colour models) */
      const struct { const double (*mse)[3]; int n; const char *measure, *note; } kinds[] = {
        { r->steering_mse, r->steering_n, _("ε error at t = %d, right caption"),
          _("another class's caption %.4f, none %.4f; %d images") },
        /* Translators: the ε error where the shapes are, on shapes scenes */
        { r->steering_shape_mse, r->steering_shape_n, _("… shapes at t = %d, right caption"),
          _("other shapes named %.4f, none %.4f; %d scenes, where the shapes are") },
      };
      for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
        for (int k = 0; k < TF_EVAL_STEERING_LEVELS && kinds[i].n > 0; k++)
          {
            g_autofree char *measure = g_strdup_printf (kinds[i].measure, r->steering_t[k]);
            g_autofree char *value = g_strdup_printf ("%.4f", kinds[i].mse[k][0]);
            g_autofree char *note = g_strdup_printf (kinds[i].note, kinds[i].mse[k][1],
                                                     kinds[i].mse[k][2], kinds[i].n);
            row (out, i == 0 && k == 0 ? "steering" : "", measure, value, "", note);
          }
    }
  if (r->drawn != NULL)
    {
      g_auto(GStrv) examples = tf_eval_pick_examples (r, 8);

      if (examples[0] == NULL)
        fprintf (out, _("\nNo prompt came out as asked often enough to suggest.\n"));
      else
        fprintf (out, _("\nPrompts it drew as asked (`convert --examples-from` stores them for "
                        "the app):\n"));
      for (guint i = 0; examples[i] != NULL; i++)
        fprintf (out, "  %s\n", examples[i]);
    }
  fprintf (out, _("\n%.0f s\n"), r->seconds);
}

/* ---- eval --------------------------------------------------------------- */

int
tf_cli_fail (TfCli *cli, const GError *error)
{
  fflush (cli->out);
  fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
  return TF_CLI_EXIT_FAILURE;
}

int
tf_cli_eval (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = tf_cli_command_usage (command);
  g_autofree char *model = NULL, *judge_path = NULL, *only = NULL, *sampler = NULL;
  g_autofree char *json_file = NULL, *precision_text = NULL;
  TfPrecision precision;
  gboolean json = FALSE, sweep = FALSE;
  gint64 seed = 1;
  TfEvalOptions options;

  tf_eval_options_init (&options);
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("The model (the bundled one)"), N_("FILE") },
    { "judge", 0, 0, G_OPTION_ARG_FILENAME, &judge_path, N_("The Fashion-MNIST judge (the one in resources/judge/, or installed)"), N_("FILE") },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON instead of a table"), NULL },
    { "json-file", 0, 0, G_OPTION_ARG_FILENAME, &json_file, N_("Also write the JSON to FILE"), N_("FILE") },
    { "samples", 'n', 0, G_OPTION_ARG_INT, &options.samples, N_("Images per class and phrasing; 10×N shapes scenes and emoji prompts, 5×N single shapes, 100×N captions (10)"), N_("N") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &options.settings.steps, N_("Denoising steps per image (the model's own, else 25)"), N_("S") },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &options.settings.cfg, N_("Guidance scale (the model's own, else 3)"), N_("W") },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &sampler, N_("ddpm or ddim (the model's own, else ddim)"), N_("NAME") },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, N_("Seed of the prompts and the noise (1)"), N_("K") },
    { "sweep", 0, 0, G_OPTION_ARG_NONE, &sweep, N_("First choose the sampler, steps and guidance: the image sections at 12 settings, then everything at the best"), NULL },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only, N_("Sections to run: fashion,caption,shapes,emoji,text,steering (all)"), N_("LIST") },
    { "text-documents", 0, 0, G_OPTION_ARG_INT, &options.text_documents, N_("Held-out WordNet documents for bits per byte (400)"), N_("N") },
    TF_CLI_PRECISION_ENTRY (precision_text),
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Measures on held-out data only: prompt → image on the ten Fashion-MNIST\n"
        "classes (judged by an independent classifier, with its accuracy on real\n"
        "t10k images, a Fréchet distance and how much the patch grid shows),\n"
        "captions of t10k images, held-out shapes scenes and single shapes asked\n"
        "in other words read back from the pixels, held-out emoji prompts (nearest\n"
        "emoji), bits per byte of held-out WordNet text beside xz and gzip, and\n"
        "how much the caption steers denoising (the ε error on noised t10k images\n"
        "after the right caption, another class's and none). Each figure is printed\n"
        "beside its target. Images are drawn with the model's own steps, guidance\n"
        "and sampler when its file names them (see --sweep), as 'generate' and the\n"
        "app draw them, else DDIM, 25 steps, guidance 3. Ctrl-C stops.\n"
        "\n"
        "--sweep first draws the image sections (fashion, shapes, emoji) with DDIM and\n"
        "DDPM at 25 and 50 steps and guidance 2, 3 and 5, on the same prompts and\n"
        "noise, and measures everything with the settings whose images came out\n"
        "best; 'convert --examples-from' stores those in the model as its own\n"
        "defaults for 'generate' and the app. --steps, --cfg and --sampler are then\n"
        "not used."));
  TfCliImageDefaults defaults;
  tf_cli_image_options_mark (&options.settings, &defaults);
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  const guint not_given = tf_cli_image_options_fill (&options.settings, &defaults) |
                          (sampler == NULL ? TF_CLI_NOT_GIVEN_SAMPLER : 0);

  if ((status = tf_cli_precision (cli, line, precision_text, &precision)) >= 0)
    return status;
  g_autoptr(GError) error = NULL;
  if (only != NULL && !tf_eval_sections_parse (only, &options.sections, &error))
    return tf_cli_usage_error (cli, line, error->message);
  if (sampler != NULL && !tf_sampler_from_name (sampler, &options.settings.sampler))
    return tf_cli_usage_error (cli, line, _("--sampler must be ddpm or ddim"));
  if (seed < 0)
    return tf_cli_usage_error (cli, line, _("--seed must not be negative"));
  options.settings.seed = (uint64_t) seed;
  if (options.samples < 1 || options.samples > 200)
    return tf_cli_usage_error (cli, line, _("--samples must be 1 to 200"));
  if (options.text_documents < 1)
    return tf_cli_usage_error (cli, line, _("--text-documents must be at least 1"));
  if (!tf_generate_settings_validate (&options.settings, &error))
    return tf_cli_usage_error (cli, line, error->message);

  g_autoptr(TfJudge) judge = NULL;
  if (options.sections & TF_EVAL_FASHION)
    {
      g_autofree char *data = tf_installed_data_dir ();
      /* the committed judge: in the source tree, or where it is installed */
      g_autofree char *path = judge_path != NULL ? g_strdup (judge_path)
                              : tf_running_uninstalled ()
                              ? g_build_filename (TF_SOURCE_ROOT, DEFAULT_JUDGE, NULL)
                              : g_build_filename (data, "transfusion", "judge",
                                                  "fashion-judge.safetensors", NULL);
      judge = tf_judge_load (path, &error);
      if (judge == NULL)
        {
          tf_cli_fail (cli, error);
          fprintf (cli->err, _("(make one with '%s judge-train --output FILE' and pass --judge FILE)\n"),
                   PROGRAM);
          return TF_CLI_EXIT_FAILURE;
        }
    }
  g_autofree char *model_path = NULL;
  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, &model_path);
  if (gen == NULL)
    return TF_CLI_EXIT_FAILURE;
  /* measured as people draw with it */
  tf_cli_image_options_use_model (model_path, not_given, &options.settings);
  tf_cli_set_precision (cli, gen, precision);

  EvalProgress progress = { cli->err, isatty (fileno (cli->err)), NULL, g_get_monotonic_time () };
  struct sigaction previous;
  TfEvalReport report;
  options.progress = on_progress;
  options.user_data = &progress;
  options.abort = &tf_cli_interrupted;
  tf_cli_catch_interrupt (gen, &previous);
  gboolean ok = sweep ? tf_eval_sweep (gen, judge, &options, &report, &error)
                      : tf_eval_run (gen, judge, &options, &report, &error);
  tf_cli_release_interrupt (&previous);
  if (progress.tty && progress.section != NULL)
    fputc ('\n', cli->err);
  if (!ok)
    {
      tf_eval_report_clear (&report);
      return tf_cli_fail (cli, error);
    }
  g_autofree char *text = tf_eval_report_to_json (&report);
  if (json)
    fprintf (cli->out, "%s\n", text);
  else
    {
      if (sweep)
        print_sweep (cli->out, &report);
      print_table (cli->out, &report, model_path, &options);
    }
  tf_eval_report_clear (&report);
  g_autofree char *with_newline = g_strconcat (text, "\n", NULL);
  if (json_file != NULL && !g_file_set_contents (json_file, with_newline, -1, &error))
    return tf_cli_fail (cli, error);
  return TF_CLI_EXIT_OK;
}

/* ---- judge-train --------------------------------------------------------- */

static void
on_judge_epoch (const TfJudgeProgress *p, gpointer user_data)
{
  TfCli *cli = user_data;

  fprintf (cli->err, _("epoch %d/%d: loss %.4f, validation accuracy %.2f%%, %.0f s\n"),
           p->epoch, p->epochs, p->loss, 100 * p->validation_accuracy, p->seconds);
  fflush (cli->err);
}

int
tf_cli_judge_train (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s judge-train [OPTION…] --output FILE", PROGRAM);
  g_autofree char *output = NULL;
  TfJudgeTrainOptions o;
  gint64 seed = 1;

  tf_judge_train_options_init (&o);
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, N_("Where to write the judge (.safetensors)"), N_("FILE") },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &o.epochs, N_("Passes over the train split (8)"), N_("N") },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, N_("Seed of the initialisation and the order (1)"), N_("S") },
    { "max-examples", 0, 0, G_OPTION_ARG_INT, &o.max_examples, N_("Use only the first N train images (all)"), N_("N") },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Trains the classifier that 'eval' judges generated Fashion-MNIST images\n"
        "with, on the train split only (the last 5000 images kept aside to report\n"
        "progress), then prints its accuracy on the t10k split."));
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  if (output == NULL)
    return tf_cli_usage_error (cli, line, _("no --output FILE given"));
  if (o.epochs < 1 || o.epochs > 1000)
    return tf_cli_usage_error (cli, line, _("--epochs must be 1 to 1000"));
  if (o.max_examples < 0 || seed < 0)
    return tf_cli_usage_error (cli, line, _("--max-examples and --seed must not be negative"));
  o.seed = (uint64_t) seed;

  g_autoptr(GError) error = NULL;
  TfJudgeDims dims;
  tf_judge_dims_default (&dims, 32);
  g_autoptr(TfDataSource) train = tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, dims.size, 1, &error);
  g_autoptr(TfDataSource) test = NULL;
  if (train == NULL || !(test = tf_data_fashion_new (NULL, TF_SPLIT_HELDOUT, dims.size, 1, &error)))
    return tf_cli_fail (cli, error);
  g_autoptr(TfJudge) judge = tf_judge_new (&dims, o.seed);
  g_autoptr(GTimer) timer = g_timer_new ();
  struct sigaction previous;
  tf_cli_catch_interrupt (NULL, &previous);
  gboolean ok = tf_judge_train (judge, train, &o, on_judge_epoch, cli, &tf_cli_interrupted, &error);
  tf_cli_release_interrupt (&previous);
  if (!ok)
    return tf_cli_fail (cli, error);
  const double seconds = g_timer_elapsed (timer, NULL);
  double accuracy;
  if (!tf_judge_accuracy (judge, test, 0, &accuracy, &error))
    return tf_cli_fail (cli, error);
  const int64_t n_train = o.max_examples > 0 ? MIN (o.max_examples, tf_data_source_size (train))
                                             : tf_data_source_size (train);
  g_autofree char *provenance = g_strdup_printf (
      "{\"trainer\":\"transfusion-cli judge-train " PACKAGE_VERSION "\",\"epochs\":%d,"
      "\"batch\":%d,\"lr\":%g,\"seed\":%" G_GUINT64_FORMAT ",\"train_images\":%" G_GINT64_FORMAT
      ",\"validation_images\":%d,\"t10k_accuracy\":%.4f,\"train_seconds\":%.0f}",
      o.epochs, o.batch, o.lr, (guint64) o.seed, n_train, (int) MIN ((int64_t) o.validation, n_train / 5),
      accuracy, seconds);
  if (!tf_judge_save (judge, output, provenance, &error))
    return tf_cli_fail (cli, error);
  fprintf (cli->out, _("wrote %s: %.2f%% right on the %" PRId64 " t10k images; trained in %.0f s\n"),
           output, 100 * accuracy, tf_data_source_size (test), seconds);
  return TF_CLI_EXIT_OK;
}
