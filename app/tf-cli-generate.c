/* tf-cli-generate.c: `transfusion-cli generate`, `caption` and `chat`:
 * sampling from a model (SPEC §4) at the command line.
 *
 * Results go to stdout (file names, captions, the replies of a chat);
 * progress, seeds and messages go to stderr. Every command checks its
 * options before it loads the model, so a wrong flag fails at once. */
#include "config.h"

#include "tf-cli-private.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tf-generate.h"
#include "tf-image.h"
#include "tf-model-info.h"

#define MAX_UPSCALE 32
#define MAX_COUNT 100

/* ---- Shared ------------------------------------------------------------- */


static int
file_error (TfCli *cli, const GError *error)
{
  fflush (cli->out);
  fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
  return TF_CLI_EXIT_FAILURE;
}

/* An option's description with its default filled in: GOption keeps the
 * pointer, @keep owns the text. */
G_GNUC_PRINTF (2, 3)
static const char *
describe (GPtrArray *keep, const char *format, ...)
{
  va_list args;
  char *text;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_ptr_array_add (keep, text);
  return text;
}

/* --seed S, or a random seed (*random is set: announce_seed() prints it
 * once the work starts, so that the result can be made again). */
static gboolean
resolve_seed (TfCli *cli, const char *line, const char *text, TfGenerateSettings *settings,
              gboolean *random)
{
  g_autoptr(GError) error = NULL;
  guint64 seed;

  *random = text == NULL;
  if (text == NULL)
    {
      settings->seed = g_random_int ();
      return TRUE;
    }
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, &seed, &error))
    {
      g_autofree char *message = g_strdup_printf ("--seed: %s", error->message);

      tf_cli_usage_error (cli, line, message);
      return FALSE;
    }
  settings->seed = seed;
  return TRUE;
}

static void
announce_seed (TfCli *cli, const TfGenerateSettings *settings, gboolean random)
{
  /* A format macro inside _() would hide the string from xgettext. */
  g_autofree char *seed = g_strdup_printf ("%" G_GUINT64_FORMAT, (guint64) settings->seed);

  if (random)
    fprintf (cli->err, _("seed %s (--seed %s does this again)\n"), seed, seed);
}

static gboolean
check_settings (TfCli *cli, const char *line, const TfGenerateSettings *settings)
{
  g_autoptr(GError) error = NULL;

  if (tf_generate_settings_validate (settings, &error))
    return TRUE;
  tf_cli_usage_error (cli, line, error->message);
  return FALSE;
}

/* ---- The model's own image settings (declared in tf-cli-private.h) ---- */

/* Options left at these after parsing were not given. */
#define STEPS_NOT_GIVEN G_MININT
#define CFG_NOT_GIVEN (-G_MAXDOUBLE)

void
tf_cli_image_options_mark (TfGenerateSettings *settings, TfCliImageDefaults *defaults)
{
  defaults->steps = settings->steps;
  defaults->cfg = settings->cfg;
  settings->steps = STEPS_NOT_GIVEN;
  settings->cfg = CFG_NOT_GIVEN;
}

guint
tf_cli_image_options_fill (TfGenerateSettings *settings, const TfCliImageDefaults *defaults)
{
  guint missing = 0;
  if (settings->steps == STEPS_NOT_GIVEN)
    {
      settings->steps = defaults->steps;
      missing |= TF_CLI_NOT_GIVEN_STEPS;
    }
  if (settings->cfg == CFG_NOT_GIVEN)
    {
      settings->cfg = defaults->cfg;
      missing |= TF_CLI_NOT_GIVEN_CFG;
    }
  return missing;
}

void
tf_cli_image_options_use_model (const char *model_path, guint missing,
                                TfGenerateSettings *settings)
{
  g_autoptr(TfSafetensors) st = missing != 0 ? tf_safetensors_open (model_path, NULL) : NULL;
  TfGenerateSettings model;

  tf_generate_settings_init (&model);
  if (st == NULL || !tf_model_file_sampling (st, &model))
    return;
  if (missing & TF_CLI_NOT_GIVEN_STEPS)
    settings->steps = model.steps;
  if (missing & TF_CLI_NOT_GIVEN_CFG)
    settings->cfg = model.cfg;
  if (missing & TF_CLI_NOT_GIVEN_SAMPLER)
    settings->sampler = model.sampler;
}

/* --model FILE, or the bundled model (declared in tf-cli-private.h). */
TfGenerator *
tf_cli_open_generator (TfCli *cli, const char *given, char **path_out)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = given != NULL ? g_strdup (given) : tf_default_model_path ();
  TfGenerator *gen;

  if (path == NULL)
    {
      g_auto(GStrv) locations = tf_default_model_locations ();
      g_autofree char *where = g_strjoinv (", ", locations);

      fprintf (cli->err, _("%s: no model given and no bundled model found (looked in %s); "
                           "pass --model FILE\n"), PROGRAM, where);
      return NULL;
    }
  gen = tf_model_info_open_generator (path, &error);
  if (gen == NULL)
    {
      file_error (cli, error);
      return NULL;
    }
  if (path_out != NULL)
    *path_out = g_steal_pointer (&path);
  return gen;
}

/* Makes the folder @dir (and its parents) if it is not there. */
static gboolean
ensure_folder (TfCli *cli, const char *dir)
{
  g_autofree char *shown = g_filename_display_name (dir);

  if (g_mkdir_with_parents (dir, 0777) == 0 && g_file_test (dir, G_FILE_TEST_IS_DIR))
    return TRUE;
  fprintf (cli->err, _("%s: %s: could not make the folder: %s\n"), PROGRAM, shown,
           g_strerror (errno != 0 ? errno : ENOTDIR));
  return FALSE;
}

static gboolean
is_special (const TfConfig *config, int32_t id)
{
  return id == config->bos_id || id == config->eos_id || id == config->boi_id ||
         id == config->eoi_id || id == config->pad_id || id == config->user_id ||
         id == config->assistant_id;
}

/* ---- Ctrl-C ------------------------------------------------------------- */

/* The generator that Ctrl-C stops. tf_generator_abort() only sets an atomic
 * flag that the running call checks between steps and tokens, which makes it
 * safe in a signal handler. */
static gpointer interrupt_target;
volatile gint tf_cli_interrupted;

static void
on_interrupt (int signum)
{
  TfGenerator *gen = g_atomic_pointer_get (&interrupt_target);

  g_atomic_int_set (&tf_cli_interrupted, 1);
  if (gen != NULL)
    tf_generator_abort (gen);
}

void
tf_cli_catch_interrupt (TfGenerator *gen, struct sigaction *previous)
{
  struct sigaction action = { 0 };

  action.sa_handler = on_interrupt;
  /* A second Ctrl-C ends the program at once. */
  action.sa_flags = SA_RESETHAND;
  sigemptyset (&action.sa_mask);
  g_atomic_int_set (&tf_cli_interrupted, 0);
  g_atomic_pointer_set (&interrupt_target, gen);
  sigaction (SIGINT, &action, previous);
}

void
tf_cli_release_interrupt (const struct sigaction *previous)
{
  sigaction (SIGINT, previous, NULL);
  g_atomic_pointer_set (&interrupt_target, NULL);
}

/* ---- Progress ----------------------------------------------------------- */

/* A terminal sees a bar rewritten in place; a log sees one line at the end. */
typedef struct {
  FILE    *err;
  gboolean tty;
  gint64   start;       /* monotonic µs */
  gint64   last_draw;
  int      step, n_steps;
} Progress;

#define PROGRESS_WIDTH 30

static void
progress_begin (Progress *p, FILE *err)
{
  *p = (Progress) { .err = err, .tty = isatty (fileno (err)), .start = g_get_monotonic_time () };
}

static double
progress_rate (const Progress *p, double *seconds)
{
  *seconds = (double) (g_get_monotonic_time () - p->start) / G_USEC_PER_SEC;
  return *seconds > 0 ? p->step / *seconds : 0.0;
}

static void
progress_step (Progress *p, int step, int n_steps)
{
  gint64 now = g_get_monotonic_time ();
  char bar[PROGRESS_WIDTH + 1];
  double seconds, rate;
  int filled;

  p->step = step;
  p->n_steps = n_steps;
  if (!p->tty || (step != n_steps && now - p->last_draw < G_USEC_PER_SEC / 10))
    return;
  p->last_draw = now;
  filled = n_steps > 0 ? step * PROGRESS_WIDTH / n_steps : 0;
  memset (bar, '#', filled);
  memset (bar + filled, '.', PROGRESS_WIDTH - filled);
  bar[PROGRESS_WIDTH] = '\0';
  rate = progress_rate (p, &seconds);
  fprintf (p->err, _("\r\033[K[%s] step %d/%d  %.1f steps/s"), bar, step, n_steps, rate);
  fflush (p->err);
}

static void
progress_end (Progress *p)
{
  double seconds, rate;

  if (p->step == 0)
    return;
  rate = progress_rate (p, &seconds);
  if (p->tty)
    fputc ('\n', p->err);
  else
    fprintf (p->err, _("%d of %d steps in %.1f s (%.1f steps/s)\n"), p->step, p->n_steps,
             seconds, rate);
  fflush (p->err);
  p->step = 0;
}

/* ---- generate ----------------------------------------------------------- */

typedef struct {
  TfGenerator *gen;
  Progress     progress;
  const char  *previews;       /* folder, or NULL */
  int          preview_every;
  GError      *error;          /* a preview that could not be written */
} GenerateRun;

static void
on_generate_step (const TfStepEvent *event, gpointer user_data)
{
  GenerateRun *run = user_data;

  if (run->previews != NULL && run->error == NULL &&
      (event->step % run->preview_every == 0 || event->step == event->n_steps))
    {
      g_autofree char *name = g_strdup_printf ("step-%03d.png", event->step);
      g_autofree char *path = g_build_filename (run->previews, name, NULL);

      if (!tf_write_generated_png (path, event->x0, event->size, event->channels, 1, NULL,
                                   &run->error))
        tf_generator_abort (run->gen);
    }
  progress_step (&run->progress, event->step, event->n_steps);
}

/* "out.png" → "out-x4.png" */
/* FILE.png → FILE-SUFFIX.png */
static char *
suffixed_path (const char *path, const char *suffix)
{
  size_t len = strlen (path);

  if (len > 4 && g_ascii_strcasecmp (path + len - 4, ".png") == 0)
    len -= 4;
  return g_strdup_printf ("%.*s-%s.png", (int) len, path, suffix);
}

static char *
upscaled_path (const char *path, int scale)
{
  g_autofree char *suffix = g_strdup_printf ("x%d", scale);
  return suffixed_path (path, suffix);
}

static char *
numbered_path (const char *path, int number)
{
  g_autofree char *suffix = g_strdup_printf ("%d", number);
  return suffixed_path (path, suffix);
}

/* The folder @path goes into must be there: found out now, not after the
 * image is made. */
static gboolean
check_output (TfCli *cli, const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *shown = g_filename_display_name (path);
  g_autofree char *shown_dir = g_filename_display_name (dir);

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    fprintf (cli->err, _("%s: %s: could not write: it is a folder\n"), PROGRAM, shown);
  else if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    fprintf (cli->err, _("%s: %s: could not write: there is no folder %s\n"), PROGRAM, shown,
             shown_dir);
  else
    return TRUE;
  return FALSE;
}

int
tf_cli_generate (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s generate [OPTION…] --prompt TEXT --out FILE.png",
                                            PROGRAM);
  g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *prompt = NULL, *negative = NULL, *seed_text = NULL, *sampler = NULL;
  g_autofree char *model = NULL, *out = NULL, *previews = NULL, *init_image = NULL;
  g_autofree char *precision_text = NULL;
  TfPrecision precision;
  int preview_every = 1, upscale = 0, count = 1;
  double strength = NAN;
  TfGenerateSettings settings;
  gboolean random_seed;

  tf_generate_settings_init (&settings);
  const GOptionEntry entries[] = {
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, N_("What to draw"), N_("TEXT") },
    { "negative", 0, 0, G_OPTION_ARG_STRING, &negative, N_("What to steer away from (guidance against the empty caption)"), N_("TEXT") },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, N_("Where to write the image (PNG)"), N_("FILE") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &settings.steps,
      describe (keep, _("Denoising steps (the model's own, else %d)"), settings.steps), N_("N") },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &settings.cfg,
      describe (keep, _("Guidance scale; 1 turns guidance off (the model's own, else %g)"),
                settings.cfg), N_("W") },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &sampler,
      describe (keep, _("ddpm or ddim (the model's own, else %s)"), tf_sampler_name (settings.sampler)),
      N_("NAME") },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed_text, N_("Seed of every random draw (random, and printed)"), N_("S") },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("The model (the bundled one)"), N_("FILE") },
    { "previews", 0, 0, G_OPTION_ARG_FILENAME, &previews, N_("Write the predicted image of each step to DIR/step-001.png…"), N_("DIR") },
    { "preview-every", 0, 0, G_OPTION_ARG_INT, &preview_every, N_("Only every K-th step, and the last (1)"), N_("K") },
    { "upscale", 0, 0, G_OPTION_ARG_INT, &upscale, N_("Also write FILE-xN.png, N times bigger, pixels kept crisp"), N_("N") },
    { "count", 'n', 0, G_OPTION_ARG_INT, &count, N_("Draw N images on consecutive seeds, FILE-1.png… (1)"), N_("N") },
    { "init-image", 0, 0, G_OPTION_ARG_FILENAME, &init_image, N_("Start from this picture (PNG or JPEG) instead of pure noise"), N_("FILE") },
    { "strength", 0, 0, G_OPTION_ARG_DOUBLE, &strength,
      describe (keep, _("How much of --init-image to redraw, above 0 to 1 (%g)"), settings.strength),
      N_("S") },
    TF_CLI_PRECISION_ENTRY (precision_text),
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Writes an 8-bit RGB PNG whose \"parameters\" text holds the prompt and the\n"
        "settings in the form other tools read (Stable Diffusion web UI). The same\n"
        "model, prompt, settings and seed give the same image, byte for byte.\n"
        "Steps, guidance and sampler not given are the model's own when its file\n"
        "names them (chosen by 'eval --sweep'), else the defaults shown.\n"
        "Ctrl-C stops."));
  TfCliImageDefaults defaults;
  tf_cli_image_options_mark (&settings, &defaults);
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  const guint missing = tf_cli_image_options_fill (&settings, &defaults) |
                        (sampler == NULL ? TF_CLI_NOT_GIVEN_SAMPLER : 0);
  if ((status = tf_cli_precision (cli, line, precision_text, &precision)) >= 0)
    return status;
  if (prompt == NULL)
    return tf_cli_usage_error (cli, line, _("no --prompt given"));
  if (out == NULL)
    return tf_cli_usage_error (cli, line, _("no --out file given"));
  if (sampler != NULL && !tf_sampler_from_name (sampler, &settings.sampler))
    {
      g_autofree char *message = g_strdup_printf (_("--sampler: '%s' is not ddpm or ddim"),
                                                  sampler);
      return tf_cli_usage_error (cli, line, message);
    }
  if (preview_every < 1)
    return tf_cli_usage_error (cli, line, _("--preview-every must be 1 or more"));
  if (count < 1 || count > MAX_COUNT)
    {
      g_autofree char *message = g_strdup_printf (_("--count must be 1 to %d"), MAX_COUNT);
      return tf_cli_usage_error (cli, line, message);
    }
  if (count > 1 && previews != NULL)
    return tf_cli_usage_error (cli, line, _("--previews draws the steps of one image: "
                                            "leave out --count"));
  if (upscale != 0 && (upscale < 2 || upscale > MAX_UPSCALE))
    {
      g_autofree char *message = g_strdup_printf (_("--upscale must be 2 to %d"), MAX_UPSCALE);
      return tf_cli_usage_error (cli, line, message);
    }
  settings.negative = negative;
  if (!isnan (strength))
    {
      if (init_image == NULL)
        return tf_cli_usage_error (cli, line, _("--strength needs --init-image"));
      settings.strength = strength;
    }
  if (!check_settings (cli, line, &settings) ||
      !resolve_seed (cli, line, seed_text, &settings, &random_seed))
    return TF_CLI_EXIT_USAGE;
  if (!check_output (cli, out) || (previews != NULL && !ensure_folder (cli, previews)))
    return TF_CLI_EXIT_FAILURE;

  g_autofree char *model_path = NULL;
  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, &model_path);
  if (gen == NULL)
    return TF_CLI_EXIT_FAILURE;
  tf_cli_image_options_use_model (model_path, missing, &settings);
  tf_cli_set_precision (cli, gen, precision);
  g_autoptr(GError) error = NULL;
  g_autofree char *hash = tf_model_file_hash (model_path, &error);
  if (hash == NULL)
    return file_error (cli, error);
  announce_seed (cli, &settings, random_seed);

  const TfConfig *config = tf_model_config (tf_generator_model (gen));
  int size = config->image_size, channels = config->image_channels;
  g_autofree float *pixels = g_new0 (float, tf_config_image_values (config));
  g_autofree float *init_pixels = NULL;
  if (init_image != NULL)
    {
      /* fitted as caption fits a picture */
      TfImage image = { 0 };
      if (!tf_image_read (init_image, &image, &error))
        return file_error (cli, error);
      init_pixels = g_new (float, tf_config_image_values (config));
      tf_generator_fit_picture (gen, &image, init_pixels);
      tf_image_clear (&image);
      settings.init_image = init_pixels;
    }
  g_autofree char *name = tf_model_name_from_path (model_path);
  const uint64_t first_seed = settings.seed;
  /* Several images: one a seed, as the app's variants and the web UI's
   * batch count, each written as soon as it is drawn. */
  for (int i = 0; i < count; i++)
    {
      GenerateRun run = { .gen = gen, .previews = previews, .preview_every = preview_every };
      const TfGenerateCallbacks callbacks = { .step = on_generate_step, .user_data = &run };
      struct sigaction previous;

      settings.seed = first_seed + (uint64_t) i;
      progress_begin (&run.progress, cli->err);
      tf_cli_catch_interrupt (gen, &previous);
      gboolean ok = tf_generator_generate_image (gen, prompt, &settings, &callbacks, pixels,
                                                 &error);
      tf_cli_release_interrupt (&previous);
      progress_end (&run.progress);
      if (run.error != NULL)
        {
          status = file_error (cli, run.error);
          g_error_free (run.error);
          return status;
        }
      if (!ok)
        return file_error (cli, error);

      g_autofree char *path = count > 1 ? numbered_path (out, i + 1) : g_strdup (out);
      g_autofree char *parameters = tf_png_parameters_text (prompt, &settings, size, name, hash);
      if (!tf_write_generated_png (path, pixels, size, channels, 1, parameters, &error))
        return file_error (cli, error);
      fprintf (cli->out, _("wrote %s\n"), path);
      if (upscale != 0)
        {
          g_autofree char *big = upscaled_path (path, upscale);

          if (!tf_write_generated_png (big, pixels, size, channels, upscale, parameters, &error))
            return file_error (cli, error);
          fprintf (cli->out, _("wrote %s\n"), big);
        }
    }
  return TF_CLI_EXIT_OK;
}

/* ---- caption ------------------------------------------------------------ */

int
tf_cli_caption (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s caption [OPTION…] --image FILE", PROGRAM);
  g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *image_path = NULL, *model = NULL, *seed_text = NULL;
  g_autofree char *precision_text = NULL;
  TfPrecision precision;
  TfGenerateSettings settings;
  gboolean random_seed;

  tf_generate_settings_init (&settings);
  /* The likeliest caption, as eval measures it: sampling at 0.8 named the
   * wrong class or nothing far more often (issue 16). */
  settings.temperature = 0;
  settings.max_tokens = 32;
  const GOptionEntry entries[] = {
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &image_path, N_("The picture to describe (PNG or JPEG)"), N_("FILE") },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("The model (the bundled one)"), N_("FILE") },
    { "temperature", 0, 0, G_OPTION_ARG_DOUBLE, &settings.temperature,
      describe (keep, _("Sampling temperature; 0 takes the likeliest token (%g)"),
                settings.temperature), N_("X") },
    { "max-tokens", 0, 0, G_OPTION_ARG_INT, &settings.max_tokens,
      describe (keep, _("Longest caption, in tokens (%d)"), settings.max_tokens), N_("N") },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed_text, N_("Seed of every random draw (random, and printed)"), N_("S") },
    TF_CLI_PRECISION_ENTRY (precision_text),
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Fits the picture to the model's size (a larger one shrinks, keeping its\n"
        "shape; a smaller one keeps its size; on the colour of its edge; a grey one\n"
        "on black cut to its subject, larger than 28 × 28, shrinks to that for a\n"
        "model trained on Fashion-MNIST, as training placed those) and prints the\n"
        "model's caption on standard output."));
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  if ((status = tf_cli_precision (cli, line, precision_text, &precision)) >= 0)
    return status;
  if (image_path == NULL)
    return tf_cli_usage_error (cli, line, _("no --image given"));
  if (!check_settings (cli, line, &settings) ||
      !resolve_seed (cli, line, seed_text, &settings, &random_seed))
    return TF_CLI_EXIT_USAGE;

  g_autoptr(GError) error = NULL;
  TfImage image = { 0 };
  if (!tf_image_read (image_path, &image, &error))
    return file_error (cli, error);

  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, NULL);
  if (gen == NULL)
    {
      tf_image_clear (&image);
      return TF_CLI_EXIT_FAILURE;
    }
  tf_cli_set_precision (cli, gen, precision);
  const TfConfig *config = tf_model_config (tf_generator_model (gen));
  g_autofree float *pixels = g_new (float, tf_config_image_values (config));
  tf_generator_fit_picture (gen, &image, pixels);
  tf_image_clear (&image);
  /* The likeliest caption (temperature 0) draws nothing at random. */
  announce_seed (cli, &settings, random_seed && settings.temperature > 0);

  const TfGenerateCallbacks callbacks = { 0 };
  struct sigaction previous;
  tf_cli_catch_interrupt (gen, &previous);
  g_autofree char *caption = tf_generator_caption (gen, pixels, &settings, &callbacks, &error);
  tf_cli_release_interrupt (&previous);
  if (caption == NULL)
    return file_error (cli, error);
  fprintf (cli->out, "%s\n", caption);
  return TF_CLI_EXIT_OK;
}

/* ---- chat --------------------------------------------------------------- */

typedef struct {
  TfCli                    *cli;
  TfGenerator              *gen;
  const TfConfig           *config;
  const TfGenerateSettings *settings;
  const char               *images;       /* folder for the images drawn */
  const char               *model_name;
  const char               *model_hash;
  const char               *user_text;    /* this turn's, for an image's parameters */
  gboolean                  at_line_start; /* of stdout */
  int                       next_image;   /* chat-NNN.png */
  Progress                  progress;
  gboolean                  failed;       /* something went wrong beyond the conversation */
} ChatRun;

static void
chat_end_line (ChatRun *run)
{
  if (!run->at_line_start)
    fputc ('\n', run->cli->out);
  run->at_line_start = TRUE;
  fflush (run->cli->out);
}

static void
on_chat_token (const TfTokenEvent *event, gpointer user_data)
{
  ChatRun *run = user_data;

  if (is_special (run->config, event->id) || event->text_len == 0)
    return;
  fwrite (event->text, 1, event->text_len, run->cli->out);
  fflush (run->cli->out);
  run->at_line_start = event->text[event->text_len - 1] == '\n';
}

static void
on_chat_image_begin (gpointer user_data)
{
  ChatRun *run = user_data;

  chat_end_line (run);
  progress_begin (&run->progress, run->cli->err);
}

static void
on_chat_step (const TfStepEvent *event, gpointer user_data)
{
  ChatRun *run = user_data;

  progress_step (&run->progress, event->step, event->n_steps);
}

/* The first DIR/chat-NNN.png that is not there: a new session does not
 * write over the images of the last one. */
static char *
next_image_path (ChatRun *run)
{
  for (;; run->next_image++)
    {
      g_autofree char *name = g_strdup_printf ("chat-%03d.png", run->next_image);
      char *path = g_build_filename (run->images, name, NULL);

      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        {
          run->next_image++;
          return path;
        }
      g_free (path);
    }
}

static void
on_chat_image_end (const float *pixels, int size, int channels, gpointer user_data)
{
  ChatRun *run = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = next_image_path (run);
  g_autofree char *parameters = tf_png_parameters_text (run->user_text, run->settings, size,
                                                        run->model_name, run->model_hash);

  progress_end (&run->progress);
  if (!tf_write_generated_png (path, pixels, size, channels, 1, parameters, &error))
    {
      fprintf (run->cli->err, "%s: %s\n", PROGRAM, error->message);
      run->failed = TRUE;
      return;
    }
  fprintf (run->cli->out, "%s\n", path);
  run->at_line_start = TRUE;
  fflush (run->cli->out);
}

/* A line of the chat's input is at most this long: the model's context is
 * far shorter, and a longer line is read through without being kept. */
#define CHAT_LINE_MAX (1u << 20)

/* Reads one line of @in into @line (its newline kept), keeping at most @limit
 * bytes; a longer line is read to its end and dropped, with *@too_long set.
 * FALSE at the end of the input with nothing read. */
static gboolean
read_line (FILE *in, GString *line, size_t limit, gboolean *too_long)
{
  char chunk[4096];
  gboolean any = FALSE;
  g_string_truncate (line, 0);
  *too_long = FALSE;
  while (fgets (chunk, sizeof chunk, in) != NULL)
    {
      any = TRUE;
      size_t n = strlen (chunk);
      if (!*too_long && line->len + n <= limit)
        g_string_append_len (line, chunk, (gssize) n);
      else
        {
          *too_long = TRUE;
          g_string_truncate (line, 0);
        }
      if (n > 0 && chunk[n - 1] == '\n')
        break;
    }
  return any;
}

static void
print_chat_help (FILE *to)
{
  fputs (_("Type a message and press Enter. Commands:\n"
           "  /image FILE   attach a picture (PNG or JPEG) to the next message\n"
           "  /reset        forget the conversation\n"
           "  /quit         leave (so does Ctrl-D)\n"
           "Ctrl-C stops a reply.\n"), to);
}

/* /image FILE: the picture, in model pixels, for the next message. */
static float *
read_attachment (ChatRun *run, const char *path)
{
  g_autoptr(GError) error = NULL;
  TfImage image = { 0 };
  float *pixels;

  if (path[0] == '\0')
    {
      fprintf (run->cli->err, _("/image needs a file: /image FILE\n"));
      return NULL;
    }
  if (!tf_image_read (path, &image, &error))
    {
      fprintf (run->cli->err, "%s: %s\n", PROGRAM, error->message);
      return NULL;
    }
  pixels = g_new (float, tf_config_image_values (run->config));
  tf_generator_fit_picture (run->gen, &image, pixels);
  tf_image_clear (&image);
  fprintf (run->cli->err, _("attached %s to your next message\n"), path);
  return pixels;
}

int
tf_cli_chat (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = g_strdup_printf ("%s chat [OPTION…]", PROGRAM);
  g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *model = NULL, *seed_text = NULL, *images = NULL;
  g_autofree char *precision_text = NULL;
  TfPrecision precision;
  TfGenerateSettings settings;
  gboolean random_seed;

  tf_generate_settings_init (&settings);
  /* The likeliest reply, as eval measures answers and captions. */
  settings.temperature = 0;
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, N_("The model (the bundled one)"), N_("FILE") },
    { "temperature", 0, 0, G_OPTION_ARG_DOUBLE, &settings.temperature,
      describe (keep, _("Sampling temperature; 0 takes the likeliest token (%g)"),
                settings.temperature), N_("X") },
    { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &settings.top_p,
      describe (keep, _("Sample from the likeliest tokens that make up P; 1 is off (%g)"),
                settings.top_p), N_("P") },
    { "top-k", 0, 0, G_OPTION_ARG_INT, &settings.top_k,
      describe (keep, _("Sample from the K likeliest tokens; 0 is off (%d)"), settings.top_k),
      N_("K") },
    { "max-tokens", 0, 0, G_OPTION_ARG_INT, &settings.max_tokens,
      describe (keep, _("Longest reply, in tokens (%d)"), settings.max_tokens), N_("N") },
    { "steps", 0, 0, G_OPTION_ARG_INT, &settings.steps,
      describe (keep, _("Denoising steps of an image (the model's own, else %d)"), settings.steps),
      N_("N") },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &settings.cfg,
      describe (keep, _("Guidance scale of an image; 1 turns guidance off (the model's own, else %g)"),
                settings.cfg), N_("W") },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed_text, N_("Seed of every random draw (random, and printed)"), N_("S") },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images, N_("Where to put the images drawn (the current folder)"), N_("DIR") },
    TF_CLI_PRECISION_ENTRY (precision_text),
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
      "%s\n\n%s", _(command->summary),
      _("Reads your messages from standard input, one a line, and writes each reply\n"
        "as it is sampled. An image the model draws is saved as chat-001.png… and its\n"
        "file name printed on a line of its own. /image FILE attaches a picture to the\n"
        "next message, /reset forgets the conversation, /quit or end of input leaves."));
  TfCliImageDefaults defaults;
  tf_cli_image_options_mark (&settings, &defaults);
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;
  const guint missing =
    tf_cli_image_options_fill (&settings, &defaults) | TF_CLI_NOT_GIVEN_SAMPLER;
  if ((status = tf_cli_precision (cli, line, precision_text, &precision)) >= 0)
    return status;
  if (!check_settings (cli, line, &settings) ||
      !resolve_seed (cli, line, seed_text, &settings, &random_seed))
    return TF_CLI_EXIT_USAGE;
  if (images != NULL && !ensure_folder (cli, images))
    return TF_CLI_EXIT_FAILURE;

  g_autofree char *model_path = NULL;
  g_autoptr(TfGenerator) gen = tf_cli_open_generator (cli, model, &model_path);
  if (gen == NULL)
    return TF_CLI_EXIT_FAILURE;
  tf_cli_image_options_use_model (model_path, missing, &settings);
  tf_cli_set_precision (cli, gen, precision);
  g_autoptr(GError) error = NULL;
  g_autofree char *hash = tf_model_file_hash (model_path, &error);
  if (hash == NULL)
    return file_error (cli, error);
  announce_seed (cli, &settings, random_seed);

  g_autofree char *name = tf_model_name_from_path (model_path);
  ChatRun run = {
    .cli = cli,
    .gen = gen,
    .config = tf_model_config (tf_generator_model (gen)),
    .settings = &settings,
    .images = images != NULL ? images : ".",
    .model_name = name,
    .model_hash = hash,
    .at_line_start = TRUE,
    .next_image = 1,
  };
  const TfGenerateCallbacks callbacks = {
    .token = on_chat_token,
    .image_begin = on_chat_image_begin,
    .step = on_chat_step,
    .image_end = on_chat_image_end,
    .user_data = &run,
  };
  gboolean tty = isatty (STDIN_FILENO);
  g_autofree float *attachment = NULL;
  g_autoptr (GString) input_line = g_string_new (NULL);
  char *input;
  size_t len;

  if (tty)
    {
      fprintf (cli->err, _("Chatting with %s.\n"), name);
      print_chat_help (cli->err);
    }
  for (;;)
    {
      if (tty)
        {
          fputs ("> ", cli->out);
          fflush (cli->out);
        }
      gboolean too_long;
      if (!read_line (stdin, input_line, CHAT_LINE_MAX, &too_long))
        {
          /* Ctrl-D leaves the cursor after the prompt. */
          if (tty)
            fputc ('\n', cli->out);
          break;
        }
      if (too_long)
        {
          g_autofree char *limit = g_format_size (CHAT_LINE_MAX);
          fprintf (cli->err, _("%s: that message is longer than %s; it was not sent\n"), PROGRAM,
                   limit);
          continue;
        }
      input = input_line->str;
      len = input_line->len;
      while (len > 0 && (input[len - 1] == '\n' || input[len - 1] == '\r'))
        input[--len] = '\0';

      if (strcmp (input, "/quit") == 0 || strcmp (input, "/exit") == 0)
        break;
      if (strcmp (input, "/reset") == 0)
        {
          tf_generator_chat_reset (gen);
          g_clear_pointer (&attachment, g_free);
          fprintf (cli->err, _("(a new conversation)\n"));
          continue;
        }
      if (strcmp (input, "/image") == 0 || g_str_has_prefix (input, "/image "))
        {
          float *pixels = read_attachment (&run, g_strstrip (input + strlen ("/image")));

          if (pixels != NULL)
            {
              g_free (attachment);
              attachment = pixels;
            }
          continue;
        }
      if (input[0] == '/')
        {
          if (strcmp (input, "/help") != 0)
            fprintf (cli->err, _("unknown command '%s'\n"), input);
          print_chat_help (cli->err);
          continue;
        }
      if (input[0] == '\0' && attachment == NULL)
        continue;

      struct sigaction previous;
      g_autofree char *reply = NULL;

      run.user_text = input;
      const int forgotten = tf_generator_chat_forgotten (gen);
      tf_cli_catch_interrupt (gen, &previous);
      reply = tf_generator_chat (gen, input, attachment, &settings, &callbacks, &error);
      tf_cli_release_interrupt (&previous);
      progress_end (&run.progress);
      chat_end_line (&run);
      if (tf_generator_chat_forgotten (gen) > forgotten)
        {
          const int exchanges = tf_generator_chat_forgotten (gen) / 2;
          fprintf (cli->err,
                   ngettext ("(to make room, the model no longer sees this conversation's first "
                             "message and reply)\n",
                             "(to make room, the model no longer sees this conversation's first "
                             "%d messages and replies)\n", (unsigned long) exchanges),
                   exchanges);
        }
      if (reply != NULL)
        {
          g_clear_pointer (&attachment, g_free);
          continue;
        }
      /* A full context and Ctrl-C end the reply, not the conversation. */
      if (g_error_matches (error, TF_ERROR, TF_ERROR_INPUT))
        fprintf (cli->err, _("%s: %s (type /reset to start a new conversation)\n"), PROGRAM,
                 error->message);
      else if (g_error_matches (error, TF_ERROR, TF_ERROR_ABORTED))
        fprintf (cli->err, _("(stopped)\n"));
      else
        {
          fprintf (cli->err, "%s: %s\n", PROGRAM, error->message);
          run.failed = TRUE;
        }
      g_clear_error (&error);
    }
  return run.failed ? TF_CLI_EXIT_FAILURE : TF_CLI_EXIT_OK;
}
