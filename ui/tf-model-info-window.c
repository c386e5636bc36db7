/* tf-model-info-window.c: what the loaded model file holds, for people. */
#include "config.h"

#include "tf-model-info-window.h"

#include <inttypes.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "tf-json.h"
#include "tf-teach-view.h"
#include "tf-train.h"

struct _TfModelInfoWindow
{
  GtkWindow  parent_instance;

  /* Template children */
  GtkLabel  *model_title_label;
  GtkLabel  *model_summary_label;
  GtkBox    *left_column;
  GtkBox    *right_column;
};

G_DEFINE_FINAL_TYPE (TfModelInfoWindow, tf_model_info_window, GTK_TYPE_WINDOW)

static void
clear_box (GtkBox *box)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (box))) != NULL)
    gtk_box_remove (box, child);
}

static GtkWidget *
card_new (GtkBox *column, const char *title)
{
  GtkWidget *group = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *heading = gtk_label_new (title);
  GtkWidget *card = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);

  gtk_label_set_xalign (GTK_LABEL (heading), 0.0f);
  gtk_widget_add_css_class (heading, "card-heading");
  gtk_widget_add_css_class (card, "card");
  gtk_box_append (GTK_BOX (group), heading);
  gtk_box_append (GTK_BOX (group), card);
  gtk_box_append (column, group);
  return card;
}

static void
card_add_row (GtkWidget *card, const char *key, const char *value)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *key_label = gtk_label_new (key);
  GtkWidget *value_label = gtk_label_new (value);

  gtk_widget_add_css_class (row, "row");
  gtk_label_set_xalign (GTK_LABEL (key_label), 0.0f);
  gtk_widget_set_hexpand (key_label, TRUE);
  gtk_widget_add_css_class (key_label, "row-key");
  gtk_label_set_xalign (GTK_LABEL (value_label), 1.0f);
  gtk_label_set_ellipsize (GTK_LABEL (value_label), PANGO_ELLIPSIZE_START);
  gtk_widget_set_tooltip_text (value_label, value);
  gtk_widget_add_css_class (value_label, "row-value");
  gtk_box_append (GTK_BOX (row), key_label);
  gtk_box_append (GTK_BOX (row), value_label);
  gtk_box_append (GTK_BOX (card), row);
}

static void
card_add_int_row (GtkWidget *card, const char *key, int value)
{
  g_autofree char *text = g_strdup_printf ("%d", value);

  card_add_row (card, key, text);
}

/* How the model was trained, from its provenance: steps, time, the data
 * (a folder by its name, a Teach run's copy by its original's) and what a
 * warm start started from. */
static void
add_training_card (TfModelInfoWindow *self, const char *provenance)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *o;
  GtkWidget *card;

  if (provenance == NULL || !tf_json_parse (parser, provenance, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return;
  o = json_node_get_object (json_parser_get_root (parser));
  card = card_new (self->left_column, _("Training"));
  if (json_object_has_member (o, "step"))
    {
      /* Translators: "40 of 200" steps */
      g_autofree char *steps = g_strdup_printf (_("%" PRId64 " of %" PRId64),
                                                json_object_get_int_member_with_default (o, "step", 0),
                                                json_object_get_int_member_with_default (o, "steps", 0));
      card_add_row (card, _("Steps"), steps);
    }
  if (json_object_has_member (o, "wall_seconds"))
    {
      double seconds = json_object_get_double_member_with_default (o, "wall_seconds", 0);
      g_autofree char *time = g_strdup_printf (_("%.0f min"), seconds / 60);
      card_add_row (card, _("Training time"), time);
    }
  if (json_object_has_member (o, "images_seen")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "images_seen")))
    {
      JsonObject *seen = json_object_get_object_member (o, "images_seen");
      g_autoptr(GList) names = json_object_get_members (seen);
      g_autoptr(GString) data = g_string_new (NULL);
      for (GList *l = names; l != NULL; l = l->next)
        {
          g_autofree char *shown = tf_teach_data_name (l->data);
          g_string_append_printf (data, "%s%s", data->len > 0 ? ", " : "", shown);
        }
      card_add_row (card, _("Trained on"), data->str);
    }
  TfLineage lineage;
  if (tf_provenance_lineage (provenance, &lineage) && lineage.runs > 1)
    {
      /* Translators: the training of a model with the runs it was
       * warm-started from: "5 runs, 22797 steps, 12.5 h" */
      g_autofree char *all = g_strdup_printf (_("%d runs, %" PRId64 " steps, %.1f h"),
                                              lineage.runs, lineage.steps,
                                              lineage.wall_seconds / 3600);
      /* Translators: a row of Model Info: how much training there is in all */
      card_add_row (card, _("In all"), all);
    }
  g_autofree char *from = tf_provenance_started_from (provenance);
  if (from != NULL)
    card_add_row (card, _("Started from"), from);
}

static void
tf_model_info_window_show (TfModelInfoWindow *self, const TfModelInfo *info)
{
  const TfConfig *config = tf_model_config (info->model);
  guint64 n_params = tf_model_n_params (info->model);
  g_autofree char *count = tf_format_count (n_params);
  g_autofree char *size = g_format_size (info->file_size);
  /* Translators: the model info window's title, "default — Model Info" */
  g_autofree char *title = g_strdup_printf (_("%s — Model Info"), info->name);
  g_autofree char *exact = g_strdup_printf ("%'" G_GUINT64_FORMAT, n_params);
  g_autofree char *params = g_strdup_printf ("%s (%s)", exact, count);
  g_autofree char *keys = info->metadata_keys[0] != NULL
                          ? g_strjoinv (", ", info->metadata_keys) : g_strdup (_("none"));
  g_autofree char *folder = g_path_get_dirname (info->path);
  g_autofree char *summary = NULL;
  GtkWidget *cards[TF_N_CONFIG_GROUPS];
  GtkWidget *card;
  const TfConfigField *fields;
  guint n_fields;

  /* Translators: "1.23 M parameters · 57 tensors · F32 · 4.9 MB" */
  summary = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                          "%s parameters · %d tensor · %s · %s",
                                          "%s parameters · %d tensors · %s · %s",
                                          info->n_tensors),
                             count, info->n_tensors, info->dtypes, size);

  gtk_window_set_title (GTK_WINDOW (self), title);
  gtk_label_set_text (self->model_title_label, info->name);
  gtk_label_set_text (self->model_summary_label, summary);

  clear_box (self->left_column);
  clear_box (self->right_column);

  card = card_new (self->left_column, _("File"));
  card_add_row (card, _("Parameters"), params);
  card_add_int_row (card, _("Tensors"), info->n_tensors);
  card_add_row (card, _("Data type"), info->dtypes);
  card_add_row (card, _("Size on disk"), size);
  card_add_row (card, _("Metadata"), keys);
  card_add_row (card, _("Folder"), folder);
  add_training_card (self, info->provenance);

  /* Columns of about the same height. */
  cards[TF_CONFIG_GROUP_TEXT] = card_new (self->left_column,
                                          tf_config_group_title (TF_CONFIG_GROUP_TEXT));
  cards[TF_CONFIG_GROUP_TOKENS] = card_new (self->left_column,
                                            tf_config_group_title (TF_CONFIG_GROUP_TOKENS));
  cards[TF_CONFIG_GROUP_TRANSFORMER] =
    card_new (self->right_column, tf_config_group_title (TF_CONFIG_GROUP_TRANSFORMER));
  cards[TF_CONFIG_GROUP_IMAGE] = card_new (self->right_column,
                                           tf_config_group_title (TF_CONFIG_GROUP_IMAGE));
  cards[TF_CONFIG_GROUP_DIFFUSION] =
    card_new (self->right_column, tf_config_group_title (TF_CONFIG_GROUP_DIFFUSION));

  fields = tf_config_fields (&n_fields);
  for (guint i = 0; i < n_fields; i++)
    {
      if (!tf_config_field_applies (&fields[i], config))
        continue;
      g_autofree char *value = tf_config_field_format (&fields[i], config);

      if (fields[i].kind == TF_CONFIG_FIELD_BOOLEAN)   /* for people */
        {
          const gboolean on = *(const gboolean *) ((const char *) config + fields[i].offset);
          g_free (value);
          value = g_strdup (on ? _("Yes") : _("No"));
        }

      card_add_row (cards[fields[i].group], _(fields[i].label), value);
    }
  /* What follows from the fields. */
  card_add_int_row (cards[TF_CONFIG_GROUP_TRANSFORMER], _("Head size"),
                    tf_config_head_dim (config));
  card_add_int_row (cards[TF_CONFIG_GROUP_IMAGE], _("Patches per image"),
                    tf_config_n_patches (config));
  card_add_int_row (cards[TF_CONFIG_GROUP_IMAGE], _("Values per patch"),
                    tf_config_patch_dim (config));
}

GtkWidget *
tf_model_info_window_new (GtkWindow *parent, const TfModelInfo *info)
{
  TfModelInfoWindow *self;

  g_return_val_if_fail (info != NULL, NULL);

  self = g_object_new (TF_TYPE_MODEL_INFO_WINDOW, "transient-for", parent, NULL);
  tf_model_info_window_show (self, info);
  return GTK_WIDGET (self);
}

static void
tf_model_info_window_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), TF_TYPE_MODEL_INFO_WINDOW);
  G_OBJECT_CLASS (tf_model_info_window_parent_class)->dispose (object);
}

static void
tf_model_info_window_class_init (TfModelInfoWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_model_info_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-model-info-window.ui");
  gtk_widget_class_bind_template_child (widget_class, TfModelInfoWindow, model_title_label);
  gtk_widget_class_bind_template_child (widget_class, TfModelInfoWindow, model_summary_label);
  gtk_widget_class_bind_template_child (widget_class, TfModelInfoWindow, left_column);
  gtk_widget_class_bind_template_child (widget_class, TfModelInfoWindow, right_column);
}

static void
tf_model_info_window_init (TfModelInfoWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
