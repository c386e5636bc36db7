/* tf-imagine-view.h: prompt to image, watching every denoising step.
 *
 * The settings on the left, the live view on the right: the predicted clean
 * image large and the noisy one beside it while the model denoises, then a
 * scrubber that replays every step, and the strip of earlier results.
 * Actions (group "imagine"): generate, stop, save-as, copy, random-seed,
 * reuse-seed, choose-init-image, remove-init-image.
 *
 * Starting from a picture (img2img): the images are drawn from it, noised
 * to the strength's level, instead of from pure noise. Files dropped on the
 * settings pane (one drop target, the whole pane):
 * - a PNG with a "parameters" text (this program's or the Stable Diffusion
 *   web UI's) fills the form from it: prompt, negative, steps, sampler,
 *   guidance, seed and strength ("PNG Info"); the init image stays as it was;
 * - any other picture file, or pixels dropped from an image editor, becomes
 *   the picture to start from.
 * A toast says which. The file chooser (choose-init-image) always sets the
 * picture to start from, settings or not. */
#pragma once

#include <gtk/gtk.h>

#include "tf-generation.h"
#include "tf-prompt-suggestions.h"

G_BEGIN_DECLS

#define TF_TYPE_IMAGINE_VIEW (tf_imagine_view_get_type ())
G_DECLARE_FINAL_TYPE (TfImagineView, tf_imagine_view, TF, IMAGINE_VIEW, GtkWidget)

/* The model to draw with (NULL: none), what to call it in saved files, and
 * what to suggest in the prompt field (may be NULL). */
void tf_imagine_view_set_model (TfImagineView             *self,
                                TfGeneration              *generation,
                                const char                *model_name,
                                const char                *model_hash,
                                const TfPromptSuggestions *suggestions);
/* Applies the defaults the preferences hold (steps, guidance, sampler). */
void tf_imagine_view_set_settings (TfImagineView *self, GSettings *settings);

/* Where earlier results are kept (the gallery's folder). */
void tf_imagine_view_set_gallery_dir (TfImagineView *self, const char *dir);

void tf_imagine_view_set_prompt (TfImagineView *self, const char *prompt);
/* The picture the next images start from (fitted to the model), or NULL:
 * from pure noise. Needs a model. FALSE with @error when @file cannot be
 * read as a picture. */
gboolean tf_imagine_view_set_init_image (TfImagineView *self, GFile *file, GError **error);
/* What a file dropped on the settings does (see above). */
gboolean tf_imagine_view_drop_file (TfImagineView *self, GFile *file, GError **error);
/* TRUE while this view's job runs. */
gboolean tf_imagine_view_get_running (TfImagineView *self);
/* The finished (or restored) image, or NULL; size × size × channels floats. */
GBytes *tf_imagine_view_get_result (TfImagineView *self);
/* How many steps the replay holds (0 before the first image). */
guint tf_imagine_view_get_n_replay_steps (TfImagineView *self);

G_END_DECLS
