/* tf-teach-view.h: fine-tuning the model on the user's own pictures
 * (issue 19).
 *
 * Four steps on one page each: choose a folder (or continue an unfinished
 * run); look at the pictures as training will see them, with their
 * captions (the model writes the missing ones; all are editable) and the
 * settings (start from the current model or a new tiny one, how strongly,
 * how long, which prompts to sample); watch the run (loss curves, samples
 * every few minutes, pause, resume, finish now); use the result.
 *
 * A run lives in a folder of its own under the teach folder
 * (tf_teach_view_set_teach_dir(); the window gives
 * XDG_DATA_HOME/transfusion/teach): the pictures fitted to the model's
 * size with their captions (pictures/0001.png, 0001.txt…: the user's
 * folder is only read), the model NAME.safetensors, its training state and
 * log, and teach.json (where the pictures came from, the prompts, and how
 * far the run got). The bundled model is never written.
 *
 * Actions (group "teach"): choose-folder, start, pause, resume, stop,
 * continue (the unfinished run found at start-up), use-model,
 * use-previous-model, new.
 *
 * Signal: open-model (const char *path): the user asked to draw and chat
 * with the model at @path (the run's result, or back to the one before). */
#pragma once

#include <gtk/gtk.h>

#include "tf-generation.h"
#include "tf-training.h"

G_BEGIN_DECLS

#define TF_TYPE_TEACH_VIEW (tf_teach_view_get_type ())
G_DECLARE_FINAL_TYPE (TfTeachView, tf_teach_view, TF, TEACH_VIEW, GtkWidget)

TfTeachView *tf_teach_view_new (void);

/* Whether @teach_dir holds a run that was paused or cut off (its training
 * state saved, not finished): what the start page offers to continue. */
gboolean tf_teach_has_unfinished_run (const char *teach_dir);

/* A training data entry (a model's provenance names it) for people: a
 * Teach run's copy of a folder ("…/RUN/pictures") by the name of the
 * folder it was copied from, anything else by its own name. */
char *tf_teach_data_name (const char *data);

/* The current model: it captions pictures and is where a warm start
 * starts. @generation may be NULL. */
void tf_teach_view_set_model (TfTeachView  *self,
                              TfGeneration *generation,
                              const char   *model_path);
/* Where runs are kept; looks there for an unfinished run to offer. */
void tf_teach_view_set_teach_dir (TfTeachView *self, const char *dir);

/* Reads @folder as the folder chooser's answer does. */
void tf_teach_view_open_folder (TfTeachView *self, GFile *folder);

/* The name of the page shown: "start", "setup" or "run". */
const char *tf_teach_view_get_page (TfTeachView *self);
/* TRUE while the folder is read or the model writes captions. */
gboolean tf_teach_view_get_preparing (TfTeachView *self);
/* TRUE while a run goes on (until its `ended`). */
gboolean tf_teach_view_get_running (TfTeachView *self);
/* After a pause or when the run ended: how. */
TfTraining *tf_teach_view_get_training (TfTeachView *self);
/* The folder of the run shown (NULL before one starts). */
const char *tf_teach_view_get_run_dir (TfTeachView *self);
/* Whether the start page offers an unfinished run. */
gboolean tf_teach_view_get_can_continue (TfTeachView *self);

/* The pictures read, and each one's caption as it stands. */
guint       tf_teach_view_get_n_pictures (TfTeachView *self);
const char *tf_teach_view_get_caption (TfTeachView *self, guint index);
gboolean    tf_teach_view_get_caption_by_model (TfTeachView *self, guint index);

/* Types @text into the caption of picture @index. */
void        tf_teach_view_set_caption (TfTeachView *self, guint index, const char *text);

/* The settings, as the user sets them. */
void tf_teach_view_set_length (TfTeachView *self, double value, gboolean minutes);
void tf_teach_view_set_from_scratch (TfTeachView *self, gboolean from_scratch);
void tf_teach_view_set_prompts (TfTeachView *self, const char *prompts);
/* "Keep What It Knew", and whether it is offered (a warm start). */
void     tf_teach_view_set_keep (TfTeachView *self, gboolean keep);
gboolean tf_teach_view_get_keep_offered (TfTeachView *self);

/* Pauses the run and waits for its save: closing the window. */
void tf_teach_view_pause_and_wait (TfTeachView *self);

G_END_DECLS
