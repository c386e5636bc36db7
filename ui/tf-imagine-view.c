/* tf-imagine-view.c: prompt to image, watching every denoising step. */
#include "config.h"

#include "tf-imagine-view.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <string.h>

#include "tf-gallery.h"
#include "tf-image.h"
#include "tf-image-export.h"
#include "tf-image-view.h"
#include "tf-model-info.h"
#include "tf-window.h"

/* Saved, copied and dragged images: each model pixel an 8 × 8 block, so a
 * 32 × 32 image is 256 × 256 and looks like what the window shows. */
#define N_EXAMPLES_SHOWN 4

struct _TfImagineView
{
  GtkWidget        parent_instance;

  /* Template children */
  GtkEntry        *prompt_entry;
  GtkEntry        *negative_entry;
  GtkLabel        *examples_label;
  GtkFlowBox      *examples_box;
  GtkSpinButton   *steps_spin;
  GtkSpinButton   *cfg_spin;
  GtkDropDown     *sampler_dropdown;
  AdwFlap         *flap;
  GtkSpinButton   *seed_spin;
  GtkLabel        *seed_hint;
  GtkWidget       *settings_hint;
  GtkSpinButton   *batch_spin;
  GtkWidget       *form;
  TfImageView     *init_view;
  GtkLabel        *init_label;
  GtkWidget       *strength_box;
  GtkRange        *strength_scale;
  GtkFlowBox      *variants_box;
  GtkWidget       *xt_column;
  GtkStack        *run_stack;
  GtkWidget       *generate_button;
  GtkWidget       *stop_button;
  GtkLabel        *status_label;
  GtkStack        *canvas_stack;
  TfImageView     *x0_view;
  TfImageView     *xt_view;
  GtkLabel        *step_label;
  GtkLabel        *rate_label;
  GtkProgressBar  *progress_bar;
  GtkStack        *progress_stack;
  GtkAdjustment   *replay_adjustment;
  TfGallery       *gallery;

  TfGeneration    *generation;
  gulong           handlers[4];
  GSettings       *app_settings;
  guint            preview_interval;   /* draw every this many steps */
  char            *model_name;
  char            *model_hash;
  GtkListStore    *completions;
  GBytes          *init_pixels;  /* the picture to start from, or NULL */
  GtkNativeDialog *init_dialog;

  /* The job in flight (or the last one). */
  GCancellable    *cancellable;
  gboolean         running;
  char            *prompt;       /* as sent */
  char            *negative;
  TfGenerateSettings settings;   /* .negative points at negative, .init_image into job_init */
  GBytes          *job_init;     /* the init image the job started from, or NULL */
  gint64           started_us;
  guint            n_steps;
  guint            last_step;
  GPtrArray       *x0_steps;     /* GBytes per step 1..n (index step-1), NULL when merged away */
  GPtrArray       *xt_steps;
  GBytes          *result;
  char            *result_path;  /* the gallery's copy */
  gboolean         result_pending_path;  /* the copy is being written */
  int              image_size;
  int              channels;

  /* Several variants per click: consecutive seeds from first_seed, one
   * engine job each; the finished ones, to choose from. */
  guint            batch_total;
  guint            batch_index;
  uint64_t         first_seed;
  GPtrArray       *variants;     /* Variant */
};

typedef struct {
  GBytes    *result;
  GPtrArray *x0_steps, *xt_steps;
  guint      n_steps;
  uint64_t   seed;
} Variant;

static void
variant_free (Variant *variant)
{
  g_bytes_unref (variant->result);
  g_ptr_array_unref (variant->x0_steps);
  g_ptr_array_unref (variant->xt_steps);
  g_free (variant);
}

G_DEFINE_FINAL_TYPE (TfImagineView, tf_imagine_view, GTK_TYPE_WIDGET)

/* ---- State -------------------------------------------------------------- */

static void
tf_imagine_view_update_actions (TfImagineView *self)
{
  gboolean busy = self->generation != NULL && tf_generation_get_busy (self->generation);
  gboolean have_result = self->result != NULL && !self->running;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.generate",
                                 self->generation != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.stop", self->running);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.save-as", have_result);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.copy", have_result);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.reuse-seed", have_result);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.choose-init-image",
                                 self->generation != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "imagine.remove-init-image",
                                 self->init_pixels != NULL);
  /* Why Generate is insensitive while Chat uses the model. */
  gtk_widget_set_tooltip_text (self->generate_button,
                               busy && !self->running
                               ? _("The model is busy with a chat reply; Escape stops it")
                               : _("Draw the image (Ctrl+Enter)"));
  if (!self->running && gtk_widget_has_focus (self->stop_button))
    {
      gtk_stack_set_visible_child_name (self->run_stack, "generate");
      gtk_widget_grab_focus (self->generate_button);
    }
  gtk_stack_set_visible_child_name (self->run_stack, self->running ? "stop" : "generate");
}

/* The seed field: −1 draws each image with a new random seed. */
static void
on_seed_changed (TfImagineView *self)
{
  gtk_label_set_text (self->seed_hint,
                      gtk_spin_button_get_value (self->seed_spin) < 0
                      ? _("A new random seed for each image")
                      : _("This seed for each image: the same settings draw the same image"));
}

static void
show_status (TfImagineView *self, const char *message)
{
  gtk_label_set_text (self->status_label, message != NULL ? message : "");
  gtk_widget_set_visible (GTK_WIDGET (self->status_label), message != NULL);
}

/* New arrays, not emptied ones: a variant may hold the old. */
static void
clear_replay (TfImagineView *self)
{
  g_clear_pointer (&self->x0_steps, g_ptr_array_unref);
  g_clear_pointer (&self->xt_steps, g_ptr_array_unref);
  self->x0_steps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  self->xt_steps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gtk_stack_set_visible_child_name (self->progress_stack, "progress");
}

/* Shows step @step (1-based) of the replay: the nearest kept one at or
 * before it, since merged steps were never seen. */
static void
show_replay_step (TfImagineView *self, guint step)
{
  for (guint i = MIN (step, self->x0_steps->len); i >= 1; i--)
    {
      GBytes *x0 = g_ptr_array_index (self->x0_steps, i - 1);

      if (x0 == NULL)
        continue;
      tf_image_view_set_bytes (self->x0_view, x0, self->image_size, self->channels);
      tf_image_view_set_bytes (self->xt_view, g_ptr_array_index (self->xt_steps, i - 1),
                               self->image_size, self->channels);
      break;
    }
  {
    /* Translators: the denoising step shown, "Step 12 of 50" */
    g_autofree char *text = g_strdup_printf (_("Step %u of %u"), step, self->n_steps);

    gtk_label_set_text (self->step_label, text);
  }
}

static void
on_replay_changed (GtkAdjustment *adjustment, TfImagineView *self)
{
  if (self->running || self->x0_steps->len == 0)
    return;
  show_replay_step (self, (guint) gtk_adjustment_get_value (adjustment));
}

/* ---- Generation's signals ----------------------------------------------- */

static void
on_step (TfGeneration *generation, guint step, guint n_steps, GBytes *x_t, GBytes *x0,
         TfImagineView *self)
{
  double elapsed;
  g_autofree char *counter = NULL;
  g_autofree char *rate = NULL;

  if (!self->running)
    return;

  self->n_steps = n_steps;
  self->last_step = step;
  if (self->x0_steps->len < n_steps)
    {
      g_ptr_array_set_size (self->x0_steps, n_steps);
      g_ptr_array_set_size (self->xt_steps, n_steps);
    }
  if (step >= 1 && step <= n_steps)
    {
      g_clear_pointer (&self->x0_steps->pdata[step - 1], g_bytes_unref);
      g_clear_pointer (&self->xt_steps->pdata[step - 1], g_bytes_unref);
      self->x0_steps->pdata[step - 1] = g_bytes_ref (x0);
      self->xt_steps->pdata[step - 1] = g_bytes_ref (x_t);
    }

  if (step % self->preview_interval == 0 || step == n_steps || step == 1)
    {
      tf_image_view_set_bytes (self->x0_view, x0, self->image_size, self->channels);
      tf_image_view_set_bytes (self->xt_view, x_t, self->image_size, self->channels);
    }
  gtk_progress_bar_set_fraction (self->progress_bar, (double) step / MAX (1u, n_steps));

  if (self->batch_total > 1)
    /* Translators: drawing several variants, "Image 2 of 4 · step 12 of 50" */
    counter = g_strdup_printf (_("Image %u of %u · step %u of %u"), self->batch_index + 1,
                               self->batch_total, step, n_steps);
  else
    counter = g_strdup_printf (_("Step %u of %u"), step, n_steps);
  gtk_label_set_text (self->step_label, counter);

  elapsed = (g_get_monotonic_time () - self->started_us) / 1e6;
  if (elapsed > 0.0)
    {
      double per_second = step / elapsed;
      double left = (n_steps - step) / MAX (per_second, 1e-6);

      /* Translators: speed and time left, "6.3 steps/s · 7 s left" */
      rate = g_strdup_printf (_("%.1f steps/s · %.0f s left"), per_second, left);
      gtk_label_set_text (self->rate_label, rate);
    }
}

static void
saved_to_gallery (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(TfImagineView) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = tf_gallery_add_finish (result, &error);

  if (path == NULL)
    {
      show_status (self, error->message);
      return;
    }
  /* Still the image on show: dragging it out offers the file. */
  if (self->result_pending_path)
    {
      g_free (self->result_path);
      self->result_path = g_steal_pointer (&path);
      self->result_pending_path = FALSE;
    }
}

static void
save_to_gallery (TfImagineView *self)
{
  g_autofree char *parameters = NULL;
  const float *pixels = g_bytes_get_data (self->result, NULL);

  parameters = tf_png_parameters_text (self->prompt, &self->settings, self->image_size,
                                       self->model_name, self->model_hash);
  g_clear_pointer (&self->result_path, g_free);
  self->result_pending_path = TRUE;
  tf_gallery_add_async (self->gallery, pixels, self->image_size, self->channels, parameters,
                        saved_to_gallery, g_object_ref (self));
}

static gboolean start_image (TfImagineView *self, GError **error);

/* The image just finished, as one of the variants to choose from. */
static void
add_variant (TfImagineView *self)
{
  Variant *variant = g_new0 (Variant, 1);
  GtkWidget *thumbnail = tf_image_view_new ();
  g_autofree char *tooltip = NULL, *seed = NULL;

  variant->result = g_bytes_ref (self->result);
  variant->x0_steps = g_ptr_array_ref (self->x0_steps);
  variant->xt_steps = g_ptr_array_ref (self->xt_steps);
  variant->n_steps = self->n_steps;
  variant->seed = self->settings.seed;
  g_ptr_array_add (self->variants, variant);

  tf_image_view_set_bytes (TF_IMAGE_VIEW (thumbnail), self->result, self->image_size,
                           self->channels);
  gtk_widget_set_size_request (thumbnail, 64, 64);
  /* Translators: a variant's tooltip, "Seed 1234" */
  seed = g_strdup_printf ("%" G_GUINT64_FORMAT, (guint64) variant->seed);
  tooltip = g_strdup_printf (_("Seed %s"), seed);
  gtk_widget_set_tooltip_text (thumbnail, tooltip);
  gtk_flow_box_append (self->variants_box, thumbnail);
  gtk_flow_box_select_child (self->variants_box,
                             gtk_flow_box_get_child_at_index (self->variants_box,
                                                              (int) self->variants->len - 1));
  gtk_widget_set_visible (GTK_WIDGET (self->variants_box), self->batch_total > 1);
}

static void
on_finished (TfGeneration *generation, const char *text, GBytes *pixels, TfImagineView *self)
{
  double elapsed;
  g_autofree char *rate = NULL;

  if (!self->running)
    return;
  self->running = FALSE;
  g_clear_object (&self->cancellable);

  g_clear_pointer (&self->result, g_bytes_unref);
  self->result = g_bytes_ref (pixels);
  tf_image_view_set_bytes (self->x0_view, pixels, self->image_size, self->channels);
  gtk_progress_bar_set_fraction (self->progress_bar, 1.0);

  elapsed = (g_get_monotonic_time () - self->started_us) / 1e6;
  {
    g_autofree char *seed = g_strdup_printf ("%" G_GUINT64_FORMAT, (guint64) self->settings.seed);

    /* Translators: when an image is done, "50 steps in 7.9 s · seed 1234" */
    rate = g_strdup_printf (_("%u steps in %.1f s · seed %s"), self->n_steps, elapsed, seed);
  }
  gtk_label_set_text (self->rate_label, rate);

  gtk_adjustment_configure (self->replay_adjustment, self->n_steps, 1, self->n_steps, 1, 5, 0);
  gtk_stack_set_visible_child_name (self->progress_stack, self->n_steps > 1 ? "replay" : "progress");

  save_to_gallery (self);
  add_variant (self);
  if (self->batch_index + 1 < self->batch_total)
    {
      g_autoptr(GError) error = NULL;

      self->batch_index++;
      if (!start_image (self, &error))
        show_status (self, error->message);
    }
  tf_imagine_view_update_actions (self);
}

static void
on_failed (TfGeneration *generation, GError *error, TfImagineView *self)
{
  if (!self->running)
    return;
  self->running = FALSE;
  g_clear_object (&self->cancellable);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      double elapsed = (g_get_monotonic_time () - self->started_us) / 1e6;
      /* Translators: after Stop, under "Step 12 of 50": "Stopped after 3.2 s" */
      g_autofree char *text = g_strdup_printf (_("Stopped after %.1f s"), elapsed);

      gtk_label_set_text (self->rate_label, text);
      /* What was drawn so far can still be replayed. */
      if (self->last_step > 1)
        {
          gtk_adjustment_configure (self->replay_adjustment, self->last_step, 1,
                                    self->last_step, 1, 5, 0);
          gtk_stack_set_visible_child_name (self->progress_stack, "replay");
        }
    }
  else
    show_status (self, error->message);
  tf_imagine_view_update_actions (self);
}

static void
on_busy_changed (TfImagineView *self)
{
  tf_imagine_view_update_actions (self);
}

/* ---- Actions ------------------------------------------------------------ */

/* Starts the engine on variant batch_index of the batch: the settings
 * with its seed (the first seed + its index). */
static gboolean
start_image (TfImagineView *self, GError **error)
{
  self->settings.seed = self->first_seed + self->batch_index;
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  if (!tf_generation_generate_image (self->generation, self->prompt, &self->settings,
                                     self->cancellable, error))
    {
      g_clear_object (&self->cancellable);
      return FALSE;
    }

  self->running = TRUE;
  /* A restored image may come from a model of another size. */
  self->image_size = tf_generation_get_image_size (self->generation);
  self->channels = tf_generation_get_channels (self->generation);
  self->started_us = g_get_monotonic_time ();
  self->n_steps = (guint) self->settings.steps;
  self->last_step = 0;
  clear_replay (self);
  g_clear_pointer (&self->result, g_bytes_unref);
  g_clear_pointer (&self->result_path, g_free);
  self->result_pending_path = FALSE;
  tf_image_view_set_pixels (self->x0_view, NULL, 0, 0);
  tf_image_view_set_pixels (self->xt_view, NULL, 0, 0);
  gtk_widget_set_opacity (self->xt_column, 1.0);
  gtk_progress_bar_set_fraction (self->progress_bar, 0.0);
  gtk_label_set_text (self->step_label, _("Starting…"));
  gtk_label_set_text (self->rate_label, "");
  gtk_stack_set_visible_child_name (self->canvas_stack, "canvas");
  return TRUE;
}

/* Hides the prompt's completion popup, a popover of the field. */
static void
close_completions (TfImagineView *self)
{
  for (GtkWidget *child = gtk_widget_get_first_child (GTK_WIDGET (self->prompt_entry));
       child != NULL; child = gtk_widget_get_next_sibling (child))
    if (GTK_IS_POPOVER (child))
      gtk_popover_popdown (GTK_POPOVER (child));
}

static void
generate_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);
  g_autoptr(GError) error = NULL;
  const char *negative;
  GtkWidget *child;

  if (self->generation == NULL || self->running)
    return;

  show_status (self, NULL);

  g_free (self->prompt);
  self->prompt = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->prompt_entry))));
  negative = gtk_editable_get_text (GTK_EDITABLE (self->negative_entry));
  g_free (self->negative);
  self->negative = g_strstrip (g_strdup (negative));

  tf_generate_settings_init (&self->settings);
  self->settings.steps = gtk_spin_button_get_value_as_int (self->steps_spin);
  self->settings.cfg = gtk_spin_button_get_value (self->cfg_spin);
  self->settings.sampler = gtk_drop_down_get_selected (self->sampler_dropdown) == 1
                           ? TF_SAMPLER_DDIM : TF_SAMPLER_DDPM;
  self->settings.negative = self->negative[0] != '\0' ? self->negative : NULL;
  /* The job copies the picture; this reference keeps what settings point
   * to for the gallery's and Save As's parameters. */
  g_clear_pointer (&self->job_init, g_bytes_unref);
  if (self->init_pixels != NULL)
    {
      self->job_init = g_bytes_ref (self->init_pixels);
      self->settings.init_image = g_bytes_get_data (self->job_init, NULL);
      self->settings.strength = gtk_range_get_value (self->strength_scale);
    }
  /* The field keeps −1: the next click gets a new seed too. */
  self->first_seed = gtk_spin_button_get_value (self->seed_spin) < 0
                     ? (uint64_t) g_random_int ()
                     : (uint64_t) gtk_spin_button_get_value (self->seed_spin);
  self->batch_total = (guint) gtk_spin_button_get_value_as_int (self->batch_spin);
  self->batch_index = 0;
  g_ptr_array_set_size (self->variants, 0);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->variants_box))) != NULL)
    gtk_flow_box_remove (self->variants_box, child);
  /* Shown from the start, at its height: the picture keeps its size while
   * the variants come in. */
  gtk_widget_set_visible (GTK_WIDGET (self->variants_box), self->batch_total > 1);

  if (!start_image (self, &error))
    {
      show_status (self, error->message);
      return;
    }
  /* On a narrow window the settings cover the picture: out of the way. */
  if (adw_flap_get_folded (self->flap))
    adw_flap_set_reveal_flap (self->flap, FALSE);
  tf_imagine_view_update_actions (self);
  /* Space stops. The prompt's suggestions close: GTK 4.8 leaves a typed
   * prompt's completions open over the field when the focus moves on. */
  gtk_widget_grab_focus (self->stop_button);
  close_completions (self);
}

/* Choosing a variant shows it, with its replay; Save, Copy and reuse-seed
 * then act on it. */
static void
on_variant_activated (TfImagineView *self, GtkFlowBoxChild *child)
{
  int index = gtk_flow_box_child_get_index (child);
  Variant *variant;
  g_autofree char *seed = NULL, *text = NULL;

  if (self->running || index < 0 || (guint) index >= self->variants->len)
    return;
  variant = g_ptr_array_index (self->variants, index);
  g_clear_pointer (&self->result, g_bytes_unref);
  self->result = g_bytes_ref (variant->result);
  g_clear_pointer (&self->x0_steps, g_ptr_array_unref);
  g_clear_pointer (&self->xt_steps, g_ptr_array_unref);
  self->x0_steps = g_ptr_array_ref (variant->x0_steps);
  self->xt_steps = g_ptr_array_ref (variant->xt_steps);
  self->n_steps = variant->n_steps;
  self->settings.seed = variant->seed;
  g_clear_pointer (&self->result_path, g_free);
  self->result_pending_path = FALSE;

  gtk_adjustment_configure (self->replay_adjustment, self->n_steps, 1, self->n_steps, 1, 5, 0);
  show_replay_step (self, self->n_steps);
  tf_image_view_set_bytes (self->x0_view, self->result, self->image_size, self->channels);
  gtk_stack_set_visible_child_name (self->progress_stack, self->n_steps > 1 ? "replay" : "none");
  seed = g_strdup_printf ("%" G_GUINT64_FORMAT, (guint64) variant->seed);
  /* Translators: the variant shown, "Variant 2 of 4 · seed 1235" */
  text = g_strdup_printf (_("Variant %d of %u · seed %s"), index + 1, self->variants->len, seed);
  gtk_label_set_text (self->rate_label, text);
  tf_imagine_view_update_actions (self);
}

static void
stop_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);

  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
}

static void
copy_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);

  if (self->result != NULL)
    tf_image_export_copy (widget, self->result, self->image_size, self->channels);
}

static void
random_seed_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  gtk_spin_button_set_value (TF_IMAGINE_VIEW (widget)->seed_spin, -1);
}

static void
reuse_seed_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);

  if (self->result != NULL)
    gtk_spin_button_set_value (self->seed_spin, (double) self->settings.seed);
}

/* A file name from the prompt: "a-red-circle-7.png". */
static char *
suggested_file_name (TfImagineView *self)
{
  g_autoptr(GString) name = g_string_new (NULL);

  for (const char *p = self->prompt != NULL ? self->prompt : ""; *p != '\0' && name->len < 40; p++)
    {
      if (g_ascii_isalnum (*p))
        g_string_append_c (name, g_ascii_tolower (*p));
      else if (name->len > 0 && name->str[name->len - 1] != '-')
        g_string_append_c (name, '-');
    }
  if (name->len == 0)
    g_string_append (name, "image");
  if (name->str[name->len - 1] != '-')
    g_string_append_c (name, '-');
  g_string_append_printf (name, "%" G_GUINT64_FORMAT ".png", (guint64) self->settings.seed);
  return g_string_free (g_steal_pointer (&name), FALSE);
}

static void
save_as_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);
  g_autofree char *name = NULL;
  g_autofree char *parameters = NULL;

  if (self->result == NULL || self->running)
    return;
  name = suggested_file_name (self);
  parameters = tf_png_parameters_text (self->prompt, &self->settings, self->image_size,
                                       self->model_name, self->model_hash);
  tf_image_export_save (widget, self->result, self->image_size, self->channels, parameters, name);
}

/* ---- Dragging the image out --------------------------------------------- */

static GdkContentProvider *
on_drag_prepare (GtkDragSource *source, double x, double y, TfImagineView *self)
{
  if (self->result == NULL || self->running)
    return NULL;
  /* The gallery's PNG for file managers, the pixels for image editors. */
  return tf_image_export_drag_content (source, self->result, self->image_size, self->channels,
                                       self->result_path);
}

/* ---- Prompt completion -------------------------------------------------- */

/* GtkEntryCompletion is GTK 4.8's completion popup; newer GTK deprecates it. */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

/* Where in @text the phrase being typed starts: the latest word start from
 * which @subject continues the text. -1 when none does. */
static int
completion_start (const char *text, const char *subject)
{
  size_t len = strlen (text);

  for (size_t start = 0; start < len; start++)
    {
      if (start > 0 && text[start - 1] != ' ')
        continue;
      if (text[start] != ' ' && g_ascii_strncasecmp (text + start, subject, len - start) == 0
          && strlen (subject) > len - start)
        return (int) start;
    }
  return -1;
}

static gboolean
completion_match (GtkEntryCompletion *completion, const char *key, GtkTreeIter *iter,
                  gpointer user_data)
{
  GtkEntry *entry = GTK_ENTRY (gtk_entry_completion_get_entry (completion));
  const char *text = gtk_editable_get_text (GTK_EDITABLE (entry));
  g_autofree char *subject = NULL;
  size_t len = strlen (text);
  int start;

  gtk_tree_model_get (gtk_entry_completion_get_model (completion), iter, 0, &subject, -1);
  if (subject == NULL || len == 0 || text[len - 1] == ' ')
    return FALSE;
  start = completion_start (text, subject);
  /* At least two letters of a word, so one letter does not flood the list. */
  return start >= 0 && len - (size_t) start >= 2;
}

static gboolean
on_completion_selected (GtkEntryCompletion *completion, GtkTreeModel *model, GtkTreeIter *iter,
                        TfImagineView *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->prompt_entry));
  g_autofree char *subject = NULL;
  g_autofree char *completed = NULL;
  int start;

  gtk_tree_model_get (model, iter, 0, &subject, -1);
  start = completion_start (text, subject);
  if (start < 0)
    return FALSE;
  completed = g_strdup_printf ("%.*s%s", start, text, subject);
  gtk_editable_set_text (GTK_EDITABLE (self->prompt_entry), completed);
  gtk_editable_set_position (GTK_EDITABLE (self->prompt_entry), -1);
  return TRUE;
}

static void
setup_completion (TfImagineView *self)
{
  g_autoptr(GtkEntryCompletion) completion = gtk_entry_completion_new ();

  self->completions = gtk_list_store_new (1, G_TYPE_STRING);
  gtk_entry_completion_set_model (completion, GTK_TREE_MODEL (self->completions));
  gtk_entry_completion_set_text_column (completion, 0);
  gtk_entry_completion_set_match_func (completion, completion_match, NULL, NULL);
  gtk_entry_completion_set_popup_single_match (completion, TRUE);
  g_signal_connect (completion, "match-selected", G_CALLBACK (on_completion_selected), self);
  gtk_entry_set_completion (self->prompt_entry, completion);
}

static void
fill_completions (TfImagineView *self, const TfPromptSuggestions *suggestions)
{
  gtk_list_store_clear (self->completions);
  for (guint i = 0; suggestions != NULL && suggestions->subjects[i] != NULL; i++)
    gtk_list_store_insert_with_values (self->completions, NULL, -1, 0, suggestions->subjects[i], -1);
}

G_GNUC_END_IGNORE_DEPRECATIONS

static void
on_example_clicked (GtkButton *button, TfImagineView *self)
{
  tf_imagine_view_set_prompt (self, gtk_button_get_label (button));
  gtk_widget_grab_focus (GTK_WIDGET (self->prompt_entry));
}

static void
fill_examples (TfImagineView *self, const TfPromptSuggestions *suggestions)
{
  GtkWidget *child;
  guint n = 0;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->examples_box))) != NULL)
    gtk_flow_box_remove (self->examples_box, child);
  for (guint i = 0; suggestions != NULL && suggestions->examples[i] != NULL
                    && n < N_EXAMPLES_SHOWN; i++, n++)
    {
      GtkWidget *button = gtk_button_new_with_label (suggestions->examples[i]);

      gtk_widget_add_css_class (button, "example");
      gtk_widget_set_tooltip_text (button, suggestions->examples[i]);
      gtk_label_set_ellipsize (GTK_LABEL (gtk_button_get_child (GTK_BUTTON (button))),
                               PANGO_ELLIPSIZE_END);
      gtk_label_set_xalign (GTK_LABEL (gtk_button_get_child (GTK_BUTTON (button))), 0.0f);
      g_signal_connect (button, "clicked", G_CALLBACK (on_example_clicked), self);
      gtk_flow_box_append (self->examples_box, button);
    }
  gtk_widget_set_visible (GTK_WIDGET (self->examples_label), n > 0);
  gtk_widget_set_visible (GTK_WIDGET (self->examples_box), n > 0);
}

/* ---- Filling the form, starting from a picture -------------------------- */

/* The form as @parameters say: a gallery image's, or a dropped PNG's. */
static void
fill_form (TfImagineView *self, const TfParameters *parameters)
{
  tf_imagine_view_set_prompt (self, parameters->prompt);
  gtk_editable_set_text (GTK_EDITABLE (self->negative_entry),
                         parameters->negative != NULL ? parameters->negative : "");
  gtk_spin_button_set_value (self->steps_spin, parameters->settings.steps);
  gtk_spin_button_set_value (self->cfg_spin, parameters->settings.cfg);
  gtk_drop_down_set_selected (self->sampler_dropdown,
                              parameters->settings.sampler == TF_SAMPLER_DDIM ? 1 : 0);
  /* The restored seed is the point: keep it for the next Generate. */
  gtk_spin_button_set_value (self->seed_spin, (double) parameters->settings.seed);
  if (parameters->from_picture)
    gtk_range_set_value (self->strength_scale, parameters->settings.strength);
}

/* @pixels (fitted to the model, or NULL: from noise) and its @name. */
static void
set_init_pixels (TfImagineView *self, GBytes *pixels, const char *name)
{
  if (pixels != NULL)
    g_bytes_ref (pixels);
  g_clear_pointer (&self->init_pixels, g_bytes_unref);
  self->init_pixels = pixels;
  tf_image_view_set_bytes (self->init_view, pixels, self->image_size, self->channels);
  gtk_widget_set_visible (GTK_WIDGET (self->init_view), pixels != NULL);
  gtk_label_set_text (self->init_label,
                      pixels != NULL ? name
                      : _("None: from pure noise. Choose a picture, or drop one on these settings"));
  gtk_widget_set_sensitive (self->strength_box, pixels != NULL);
  tf_imagine_view_update_actions (self);
}

gboolean
tf_imagine_view_set_init_image (TfImagineView *self, GFile *file, GError **error)
{
  g_autoptr(GBytes) pixels = NULL;
  g_autofree char *name = NULL;

  g_return_val_if_fail (TF_IS_IMAGINE_VIEW (self), FALSE);
  g_return_val_if_fail (file == NULL || self->generation != NULL, FALSE);
  if (file == NULL)
    {
      set_init_pixels (self, NULL, NULL);
      return TRUE;
    }
  pixels = tf_pixels_new_from_file (file, self->image_size, self->channels,
                                    tf_generation_get_picture_grey_side (self->generation), error);
  if (pixels == NULL)
    return FALSE;
  name = g_file_get_basename (file);
  set_init_pixels (self, pixels, name);
  return TRUE;
}

/* The "parameters" text of the PNG @file, or NULL: none, or not a local PNG. */
static char *
png_parameters (GFile *file)
{
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(GHashTable) text = path != NULL ? tf_image_read_png_text (path, NULL) : NULL;

  return text != NULL ? g_strdup (g_hash_table_lookup (text, "parameters")) : NULL;
}

gboolean
tf_imagine_view_drop_file (TfImagineView *self, GFile *file, GError **error)
{
  g_autofree char *text = NULL, *name = NULL, *toast = NULL;
  TfParameters parameters;

  g_return_val_if_fail (TF_IS_IMAGINE_VIEW (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (file) && self->generation != NULL, FALSE);

  text = png_parameters (file);
  name = g_file_get_basename (file);
  if (tf_parameters_parse (text, &parameters))
    {
      fill_form (self, &parameters);
      tf_parameters_clear (&parameters);
      /* Translators: a toast after a PNG was dropped on Imagine's settings */
      toast = g_strdup_printf (_("Settings read from %s"), name);
    }
  else
    {
      tf_parameters_clear (&parameters);
      if (!tf_imagine_view_set_init_image (self, file, error))
        return FALSE;
      /* Translators: a toast after a picture without settings was dropped */
      toast = g_strdup_printf (_("No settings in %s: the images start from it"), name);
    }
  tf_widget_add_toast (GTK_WIDGET (self), toast, NULL, NULL, NULL);
  return TRUE;
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, TfImagineView *self)
{
  g_autoptr(GError) error = NULL;

  if (self->generation == NULL)
    return FALSE;
  if (G_VALUE_HOLDS (value, G_TYPE_FILE))
    {
      if (tf_imagine_view_drop_file (self, g_value_get_object (value), &error))
        return TRUE;
      show_status (self, error->message);
      return FALSE;
    }
  if (G_VALUE_HOLDS (value, GDK_TYPE_TEXTURE))
    {
      /* Pixels only (from an image editor): nothing to read settings from. */
      g_autoptr(GBytes) pixels =
        tf_pixels_new_from_texture (g_value_get_object (value), self->image_size, self->channels,
                                    tf_generation_get_picture_grey_side (self->generation));

      set_init_pixels (self, pixels, _("Dropped picture"));
      return TRUE;
    }
  return FALSE;
}

static void
remove_init_image_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  set_init_pixels (TF_IMAGINE_VIEW (widget), NULL, NULL);
}

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12). */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static void
on_init_image_response (GtkNativeDialog *dialog, int response, TfImagineView *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autoptr(GError) error = NULL;

      if (file != NULL && !tf_imagine_view_set_init_image (self, file, &error))
        show_status (self, error->message);
    }
  gtk_native_dialog_destroy (dialog);
  g_clear_object (&self->init_dialog);
}

/* A chosen file is always the picture to start from, settings or not. */
static void
choose_init_image_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfImagineView *self = TF_IMAGINE_VIEW (widget);

  if (self->init_dialog == NULL)
    {
      self->init_dialog = tf_picture_chooser_new (widget, _("Start from a Picture"), _("_Open"));
      g_signal_connect (self->init_dialog, "response", G_CALLBACK (on_init_image_response), self);
    }
  gtk_native_dialog_show (self->init_dialog);
}

G_GNUC_END_IGNORE_DEPRECATIONS

/* ---- Template callbacks ------------------------------------------------- */

static void
on_prompt_activate (TfImagineView *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "imagine.generate", NULL);
}

static void
on_gallery_activated (TfImagineView *self, const char *parameters_text, GBytes *pixels,
                      int size, int channels)
{
  TfParameters parameters;

  if (self->running)
    return;

  if (tf_parameters_parse (parameters_text, &parameters))
    {
      fill_form (self, &parameters);
      g_free (self->prompt);
      self->prompt = g_strdup (parameters.prompt);
      g_free (self->negative);
      self->negative = g_strdup (parameters.negative != NULL ? parameters.negative : "");
      self->settings = parameters.settings;
      self->settings.negative = self->negative[0] != '\0' ? self->negative : NULL;
      g_clear_pointer (&self->job_init, g_bytes_unref);
    }
  tf_parameters_clear (&parameters);

  clear_replay (self);
  g_clear_pointer (&self->result, g_bytes_unref);
  self->result = g_bytes_ref (pixels);
  self->image_size = size;
  self->channels = channels;
  g_clear_pointer (&self->result_path, g_free);
  self->result_pending_path = FALSE;
  tf_image_view_set_bytes (self->x0_view, pixels, size, channels);
  tf_image_view_set_pixels (self->xt_view, NULL, 0, 0);
  /* No steps to show: the noisy image and the progress make room without
   * moving the picture. */
  gtk_widget_set_opacity (self->xt_column, 0.0);
  gtk_stack_set_visible_child_name (self->progress_stack, "none");
  gtk_widget_set_visible (GTK_WIDGET (self->variants_box), FALSE);
  gtk_label_set_text (self->step_label, _("Restored from earlier"));
  gtk_label_set_text (self->rate_label, _("Generate draws it again"));
  gtk_stack_set_visible_child_name (self->canvas_stack, "canvas");
  show_status (self, NULL);
  tf_imagine_view_update_actions (self);
}

/* ---- Public ------------------------------------------------------------- */

static void on_settings_changed (GSettings *settings, const char *key, TfImagineView *self);

/* Says so when steps, guidance and sampler are the ones the model names as
 * its own (measured best by eval): a person then knows where they came
 * from, and that changing them leaves that. */
static void
update_settings_hint (TfImagineView *self)
{
  TfGenerateSettings model;
  const gboolean own =
    self->generation != NULL && tf_generation_get_model_sampling (self->generation, &model) &&
    gtk_spin_button_get_value_as_int (self->steps_spin) == model.steps &&
    fabs (gtk_spin_button_get_value (self->cfg_spin) - model.cfg) < 1e-9 &&
    gtk_drop_down_get_selected (self->sampler_dropdown) == (guint) model.sampler;
  gtk_widget_set_visible (self->settings_hint, own);
}

void
tf_imagine_view_set_model (TfImagineView *self, TfGeneration *generation,
                           const char *model_name, const char *model_hash,
                           const TfPromptSuggestions *suggestions)
{
  g_return_if_fail (TF_IS_IMAGINE_VIEW (self));
  g_return_if_fail (generation == NULL || TF_IS_GENERATION (generation));

  if (self->generation != NULL)
    {
      if (self->cancellable != NULL)
        g_cancellable_cancel (self->cancellable);
      for (guint i = 0; i < G_N_ELEMENTS (self->handlers); i++)
        g_clear_signal_handler (&self->handlers[i], self->generation);
      g_clear_object (&self->generation);
    }
  /* A job of the old model ends unseen. */
  self->running = FALSE;
  g_clear_object (&self->cancellable);

  if (generation != NULL)
    {
      self->generation = g_object_ref (generation);
      /* A picture fitted to another model's size is no start for this one. */
      if (self->image_size != tf_generation_get_image_size (generation)
          || self->channels != tf_generation_get_channels (generation))
        g_clear_pointer (&self->init_pixels, g_bytes_unref);
      self->image_size = tf_generation_get_image_size (generation);
      self->channels = tf_generation_get_channels (generation);
      if (self->init_pixels == NULL)
        set_init_pixels (self, NULL, NULL);
      self->handlers[0] = g_signal_connect (generation, "step", G_CALLBACK (on_step), self);
      self->handlers[1] = g_signal_connect (generation, "finished", G_CALLBACK (on_finished),
                                            self);
      self->handlers[2] = g_signal_connect (generation, "failed", G_CALLBACK (on_failed), self);
      self->handlers[3] = g_signal_connect_swapped (generation, "notify::busy",
                                                    G_CALLBACK (on_busy_changed), self);
    }
  g_free (self->model_name);
  self->model_name = g_strdup (model_name != NULL ? model_name : "");
  g_free (self->model_hash);
  self->model_hash = g_strdup (model_hash != NULL ? model_hash : "");
  fill_completions (self, suggestions);
  fill_examples (self, suggestions);
  /* a new model starts from its own settings */
  if (generation != NULL && self->app_settings != NULL)
    on_settings_changed (self->app_settings, NULL, self);
  update_settings_hint (self);
  tf_imagine_view_update_actions (self);
}

/* A changed default applies to the fields at once: that is what a person
 * who just changed it expects to see. Those a person never set follow the
 * model's own settings (tf_image_defaults()). */
static void
on_settings_changed (GSettings *settings, const char *key, TfImagineView *self)
{
  TfGenerateSettings model, start;
  const gboolean has_model = self->generation != NULL &&
                             tf_generation_get_model_sampling (self->generation, &model);
  tf_image_defaults (settings, has_model ? &model : NULL, &start);
  if (key == NULL || g_str_equal (key, "default-steps"))
    gtk_spin_button_set_value (self->steps_spin, start.steps);
  if (key == NULL || g_str_equal (key, "default-cfg"))
    gtk_spin_button_set_value (self->cfg_spin, start.cfg);
  if (key == NULL || g_str_equal (key, "default-sampler"))
    gtk_drop_down_set_selected (self->sampler_dropdown, (guint) start.sampler);
  if (key == NULL || g_str_equal (key, "preview-interval"))
    self->preview_interval = (guint) MAX (1, g_settings_get_int (settings, "preview-interval"));
}

void
tf_imagine_view_set_settings (TfImagineView *self, GSettings *settings)
{
  g_return_if_fail (TF_IS_IMAGINE_VIEW (self));
  if (self->app_settings != NULL)
    g_signal_handlers_disconnect_by_data (self->app_settings, self);
  g_clear_object (&self->app_settings);
  if (settings == NULL)
    return;
  self->app_settings = g_object_ref (settings);
  g_signal_connect (settings, "changed", G_CALLBACK (on_settings_changed), self);
  on_settings_changed (settings, NULL, self);
}

void
tf_imagine_view_set_gallery_dir (TfImagineView *self, const char *dir)
{
  g_return_if_fail (TF_IS_IMAGINE_VIEW (self));
  tf_gallery_set_dir (self->gallery, dir);
}

void
tf_imagine_view_set_prompt (TfImagineView *self, const char *prompt)
{
  g_return_if_fail (TF_IS_IMAGINE_VIEW (self));
  /* A prompt put in whole is not being typed: no completions pop up (they
   * would stay open over the field once Generate takes the focus). */
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  GtkEntryCompletion *completion = gtk_entry_get_completion (self->prompt_entry);
  G_GNUC_END_IGNORE_DEPRECATIONS
  /* The completion listens to the text inside the entry. */
  GtkEditable *text = gtk_editable_get_delegate (GTK_EDITABLE (self->prompt_entry));

  g_signal_handlers_block_matched (text, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, completion);
  gtk_editable_set_text (GTK_EDITABLE (self->prompt_entry), prompt);
  gtk_editable_set_position (GTK_EDITABLE (self->prompt_entry), -1);
  g_signal_handlers_unblock_matched (text, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, completion);
}

gboolean
tf_imagine_view_get_running (TfImagineView *self)
{
  g_return_val_if_fail (TF_IS_IMAGINE_VIEW (self), FALSE);
  return self->running;
}

GBytes *
tf_imagine_view_get_result (TfImagineView *self)
{
  g_return_val_if_fail (TF_IS_IMAGINE_VIEW (self), NULL);
  return self->result;
}

guint
tf_imagine_view_get_n_replay_steps (TfImagineView *self)
{
  g_return_val_if_fail (TF_IS_IMAGINE_VIEW (self), 0);
  return self->x0_steps->len;
}

/* ---- The object --------------------------------------------------------- */

static void
tf_imagine_view_dispose (GObject *object)
{
  TfImagineView *self = TF_IMAGINE_VIEW (object);
  GtkWidget *child;

  tf_imagine_view_set_model (self, NULL, NULL, NULL, NULL);
  tf_imagine_view_set_settings (self, NULL);
  g_clear_object (&self->completions);
  if (self->init_dialog != NULL)
    gtk_native_dialog_destroy (self->init_dialog);
  g_clear_object (&self->init_dialog);
  /* The template's root box is not bound to a field: unparent it here. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  gtk_widget_dispose_template (GTK_WIDGET (self), TF_TYPE_IMAGINE_VIEW);
  G_OBJECT_CLASS (tf_imagine_view_parent_class)->dispose (object);
}

static void
tf_imagine_view_finalize (GObject *object)
{
  TfImagineView *self = TF_IMAGINE_VIEW (object);

  g_ptr_array_unref (self->x0_steps);
  g_ptr_array_unref (self->variants);
  g_ptr_array_unref (self->xt_steps);
  g_clear_pointer (&self->result, g_bytes_unref);
  g_clear_pointer (&self->init_pixels, g_bytes_unref);
  g_clear_pointer (&self->job_init, g_bytes_unref);
  g_free (self->result_path);
  g_free (self->prompt);
  g_free (self->negative);
  g_free (self->model_name);
  g_free (self->model_hash);
  G_OBJECT_CLASS (tf_imagine_view_parent_class)->finalize (object);
}

static void
tf_imagine_view_class_init (TfImagineViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_imagine_view_dispose;
  object_class->finalize = tf_imagine_view_finalize;

  g_type_ensure (TF_TYPE_IMAGE_VIEW);
  g_type_ensure (TF_TYPE_GALLERY);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-imagine-view.ui");
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, prompt_entry);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, negative_entry);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, examples_label);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, examples_box);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, steps_spin);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, cfg_spin);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, sampler_dropdown);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, flap);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, seed_spin);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, seed_hint);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, settings_hint);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, batch_spin);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, form);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, init_view);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, init_label);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, strength_box);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, strength_scale);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, variants_box);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, xt_column);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, run_stack);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, generate_button);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, stop_button);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, status_label);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, canvas_stack);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, x0_view);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, xt_view);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, step_label);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, rate_label);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, progress_stack);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, replay_adjustment);
  gtk_widget_class_bind_template_child (widget_class, TfImagineView, gallery);
  gtk_widget_class_bind_template_callback (widget_class, on_prompt_activate);
  gtk_widget_class_bind_template_callback (widget_class, on_gallery_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_variant_activated);

  gtk_widget_class_install_action (widget_class, "imagine.generate", NULL, generate_action);
  gtk_widget_class_install_action (widget_class, "imagine.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "imagine.save-as", NULL, save_as_action);
  gtk_widget_class_install_action (widget_class, "imagine.copy", NULL, copy_action);
  gtk_widget_class_install_action (widget_class, "imagine.random-seed", NULL, random_seed_action);
  gtk_widget_class_install_action (widget_class, "imagine.reuse-seed", NULL, reuse_seed_action);
  gtk_widget_class_install_action (widget_class, "imagine.choose-init-image", NULL,
                                   choose_init_image_action);
  gtk_widget_class_install_action (widget_class, "imagine.remove-init-image", NULL,
                                   remove_init_image_action);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "tf-imagine-view");
}

static void
tf_imagine_view_init (TfImagineView *self)
{
  GtkDragSource *drag = gtk_drag_source_new ();
  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_INVALID, GDK_ACTION_COPY);
  /* The file first: only a file can carry settings to read. */
  GType drop_types[] = { G_TYPE_FILE, GDK_TYPE_TEXTURE };

  gtk_widget_init_template (GTK_WIDGET (self));

  self->x0_steps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  self->xt_steps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  self->variants = g_ptr_array_new_with_free_func ((GDestroyNotify) variant_free);
  self->model_name = g_strdup ("");
  self->model_hash = g_strdup ("");
  self->preview_interval = 1;

  g_signal_connect (self->replay_adjustment, "value-changed", G_CALLBACK (on_replay_changed), self);
  g_signal_connect_swapped (self->seed_spin, "value-changed", G_CALLBACK (on_seed_changed), self);
  g_signal_connect_swapped (self->steps_spin, "value-changed", G_CALLBACK (update_settings_hint),
                            self);
  g_signal_connect_swapped (self->cfg_spin, "value-changed", G_CALLBACK (update_settings_hint),
                            self);
  g_signal_connect_swapped (self->sampler_dropdown, "notify::selected",
                            G_CALLBACK (update_settings_hint), self);
  on_seed_changed (self);
  gtk_drag_source_set_actions (drag, GDK_ACTION_COPY);
  g_signal_connect (drag, "prepare", G_CALLBACK (on_drag_prepare), self);
  gtk_widget_add_controller (GTK_WIDGET (self->x0_view), GTK_EVENT_CONTROLLER (drag));
  gtk_drop_target_set_gtypes (drop, drop_types, G_N_ELEMENTS (drop_types));
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (self->form, GTK_EVENT_CONTROLLER (drop));
  set_init_pixels (self, NULL, NULL);

  setup_completion (self);
  tf_imagine_view_update_actions (self);
}
