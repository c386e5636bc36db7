/* tf-message-row.c: one message of a chat, from the user or the model. */
#include "config.h"

#include "tf-message-row.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "tf-image-export.h"
#include "tf-image-view.h"

#define IMAGE_SIDE 192

typedef struct {
  guint   start, end;   /* bytes of the piece's text */
  double  probability;
  int     n_alternatives;
  char   *alternative_texts[TF_TOP_ALTERNATIVES];
  double  alternative_probabilities[TF_TOP_ALTERNATIVES];
} TokenSpan;

typedef struct {
  GtkWidget *widget;    /* a GtkLabel, or a TfImageView */
  GString   *text;      /* NULL for an image */
  GArray    *tokens;    /* TokenSpan */
  /* An image's pixels as shown, to copy, save or drag. */
  GBytes    *pixels;
  int        size, channels;
} Piece;

struct _TfMessageRow
{
  GtkWidget  parent_instance;
  GtkWidget *box;
  GtkWidget *role_label;
  GtkWidget *bubble;
  GtkWidget *waiting_label;
  GtkWidget *footer_label;
  GtkWidget *under_box;      /* the versions and the footer */
  GtkWidget *versions_box;
  GtkWidget *previous_button;
  GtkWidget *versions_label;
  GtkWidget *next_button;
  guint      shown_version;
  guint      n_versions;
  GPtrArray *pieces;
  gboolean   from_user;
  gboolean   show_tokens;
  guint      n_tokens;
};

G_DEFINE_FINAL_TYPE (TfMessageRow, tf_message_row, GTK_TYPE_WIDGET)

enum { SIGNAL_SHOW_VERSION, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
token_span_clear (TokenSpan *span)
{
  for (int i = 0; i < span->n_alternatives; i++)
    g_free (span->alternative_texts[i]);
}

static void
piece_free (Piece *piece)
{
  if (piece->text != NULL)
    g_string_free (piece->text, TRUE);
  if (piece->tokens != NULL)
    g_array_unref (piece->tokens);
  g_clear_pointer (&piece->pixels, g_bytes_unref);
  g_free (piece);
}

GtkWidget *
tf_message_row_new (gboolean from_user)
{
  TfMessageRow *self = g_object_new (TF_TYPE_MESSAGE_ROW, NULL);

  self->from_user = from_user;
  gtk_label_set_text (GTK_LABEL (self->role_label), from_user ? _("You") : _("Model"));
  gtk_widget_add_css_class (GTK_WIDGET (self), from_user ? "from-user" : "from-model");
  gtk_widget_set_halign (self->box, from_user ? GTK_ALIGN_END : GTK_ALIGN_START);
  gtk_widget_set_halign (self->role_label, from_user ? GTK_ALIGN_END : GTK_ALIGN_START);
  gtk_widget_set_halign (self->under_box, from_user ? GTK_ALIGN_END : GTK_ALIGN_START);
  return GTK_WIDGET (self);
}

gboolean
tf_message_row_get_from_user (TfMessageRow *self)
{
  g_return_val_if_fail (TF_IS_MESSAGE_ROW (self), FALSE);
  return self->from_user;
}

/* ---- Token colours ------------------------------------------------------ */

/* Viridis, from improbable (purple) through blue and green to near-certain
 * (yellow): its lightness rises steadily, so it reads for people who do
 * not tell red from green, and in grey. Drawn translucent, so that text
 * stays readable on light and dark backgrounds. */
static const guint8 viridis[][3] = {
  { 0x44, 0x01, 0x54 }, { 0x3b, 0x52, 0x8b }, { 0x21, 0x91, 0x8c }, { 0x5e, 0xc9, 0x62 },
  { 0xfd, 0xe7, 0x25 },
};

static void
probability_colour (double p, char out[8])
{
  const double at = CLAMP (p, 0.0, 1.0) * (G_N_ELEMENTS (viridis) - 1);
  const guint i = MIN ((guint) at, G_N_ELEMENTS (viridis) - 2);
  const double f = at - i;
  guint8 rgb[3];

  for (int c = 0; c < 3; c++)
    rgb[c] = (guint8) lround (viridis[i][c] * (1.0 - f) + viridis[i + 1][c] * f);
  g_snprintf (out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

void
tf_message_row_fill_legend (GtkBox *box)
{
  for (guint i = 0; i < 5; i++)
    {
      char colour[8];
      g_autofree char *markup = NULL;
      GtkWidget *swatch = gtk_label_new (NULL);

      probability_colour (i / 4.0, colour);
      markup = g_strdup_printf ("<span background=\"%s\" bgalpha=\"58%%\">\u2007\u2007\u2007</span>",
                                colour);
      gtk_label_set_markup (GTK_LABEL (swatch), markup);
      gtk_box_append (box, swatch);
    }
}

/* A probability for people: "12.5 %", and "< 0.1 %" rather than "0.0 %". */
static void
append_probability (GString *out, double p)
{
  if (p < 0.0005)
    g_string_append (out, _("< 0.1 %"));
  else
    g_string_append_printf (out, _("%.1f %%"), p * 100.0);
}

static void
piece_render (TfMessageRow *self, Piece *piece)
{
  g_autoptr(GString) markup = NULL;
  guint at = 0;

  if (!self->show_tokens || piece->tokens->len == 0)
    {
      gtk_label_set_text (GTK_LABEL (piece->widget), piece->text->str);
      return;
    }

  markup = g_string_new (NULL);
  for (guint i = 0; i < piece->tokens->len; i++)
    {
      TokenSpan *span = &g_array_index (piece->tokens, TokenSpan, i);
      g_autofree char *before = g_markup_escape_text (piece->text->str + at,
                                                      (gssize) (span->start - at));
      g_autofree char *token = g_markup_escape_text (piece->text->str + span->start,
                                                     (gssize) (span->end - span->start));
      char colour[8];

      probability_colour (span->probability, colour);
      /* Neighbours alternate in strength, so every boundary shows. */
      g_string_append (markup, before);
      g_string_append_printf (markup, "<span background=\"%s\" bgalpha=\"%s\">%s</span>",
                              colour, i % 2 == 0 ? "38%" : "58%", token);
      at = span->end;
    }
  {
    g_autofree char *rest = g_markup_escape_text (piece->text->str + at, -1);

    g_string_append (markup, rest);
  }
  gtk_label_set_markup (GTK_LABEL (piece->widget), markup->str);
}

/* A token as a person reads it in a tooltip: quoted, spaces visible. */
static void
append_token_text (GString *out, const char *text)
{
  g_autoptr(GString) shown = g_string_new (text);

  g_string_replace (shown, " ", "␣", 0);
  g_string_replace (shown, "\n", "↵", 0);
  g_string_append_printf (out, "“%s”", shown->str);
}

static gboolean
on_query_tooltip (GtkWidget *label, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  Piece *piece)
{
  PangoLayout *layout = gtk_label_get_layout (GTK_LABEL (label));
  int offset_x, offset_y, index, trailing;
  g_autoptr(GString) text = NULL;

  if (keyboard || piece->tokens->len == 0)
    return FALSE;
  gtk_label_get_layout_offsets (GTK_LABEL (label), &offset_x, &offset_y);
  if (!pango_layout_xy_to_index (layout, (x - offset_x) * PANGO_SCALE,
                                 (y - offset_y) * PANGO_SCALE, &index, &trailing))
    return FALSE;

  for (guint i = 0; i < piece->tokens->len; i++)
    {
      TokenSpan *span = &g_array_index (piece->tokens, TokenSpan, i);
      g_autofree char *token = NULL;

      if ((guint) index < span->start || (guint) index >= span->end)
        continue;
      text = g_string_new (NULL);
      token = g_strndup (piece->text->str + span->start, span->end - span->start);
      append_token_text (text, token);
      /* Translators: a token's tooltip, after the token and before its probability */
      g_string_append (text, _("  was chosen at "));
      append_probability (text, span->probability);
      if (span->n_alternatives > 0)
        g_string_append_printf (text, "\n%s", _("The most probable tokens were:"));
      for (int a = 0; a < span->n_alternatives; a++)
        {
          g_string_append (text, "\n");
          append_token_text (text, span->alternative_texts[a]);
          g_string_append (text, "  ");
          append_probability (text, span->alternative_probabilities[a]);
        }
      gtk_tooltip_set_text (tooltip, text->str);
      return TRUE;
    }
  return FALSE;
}

/* ---- Pieces ------------------------------------------------------------- */

static Piece *
last_text_piece (TfMessageRow *self)
{
  Piece *piece = self->pieces->len > 0 ? g_ptr_array_index (self->pieces, self->pieces->len - 1)
                                       : NULL;

  if (piece != NULL && piece->text != NULL)
    return piece;

  piece = g_new0 (Piece, 1);
  piece->text = g_string_new (NULL);
  piece->tokens = g_array_new (FALSE, TRUE, sizeof (TokenSpan));
  g_array_set_clear_func (piece->tokens, (GDestroyNotify) token_span_clear);
  piece->widget = gtk_label_new (NULL);
  gtk_label_set_wrap (GTK_LABEL (piece->widget), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (piece->widget), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_xalign (GTK_LABEL (piece->widget), 0.0f);
  gtk_label_set_selectable (GTK_LABEL (piece->widget), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (piece->widget), 60);
  gtk_widget_add_css_class (piece->widget, "message-text");
  g_signal_connect (piece->widget, "query-tooltip", G_CALLBACK (on_query_tooltip), piece);
  gtk_widget_set_has_tooltip (piece->widget, self->show_tokens);
  gtk_box_append (GTK_BOX (self->bubble), piece->widget);
  g_ptr_array_add (self->pieces, piece);
  return piece;
}

void
tf_message_row_append_text (TfMessageRow *self, const char *text)
{
  Piece *piece;

  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  if (text == NULL || *text == '\0')
    return;
  tf_message_row_set_waiting (self, FALSE);
  piece = last_text_piece (self);
  g_string_append (piece->text, text);
  piece_render (self, piece);
}

void
tf_message_row_append_token (TfMessageRow *self, const TfToken *token)
{
  Piece *piece;
  TokenSpan span = { 0 };

  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  tf_message_row_set_waiting (self, FALSE);
  piece = last_text_piece (self);
  span.start = (guint) piece->text->len;
  g_string_append (piece->text, token->text);
  span.end = (guint) piece->text->len;
  span.probability = token->probability;
  span.n_alternatives = MIN (token->n_alternatives, TF_TOP_ALTERNATIVES);
  for (int i = 0; i < span.n_alternatives; i++)
    {
      span.alternative_texts[i] = g_strdup (token->alternative_texts[i]);
      span.alternative_probabilities[i] = token->alternative_probabilities[i];
    }
  g_array_append_val (piece->tokens, span);
  self->n_tokens++;
  piece_render (self, piece);
}

static Piece *
last_image_piece (TfMessageRow *self)
{
  Piece *piece = self->pieces->len > 0 ? g_ptr_array_index (self->pieces, self->pieces->len - 1)
                                       : NULL;

  return piece != NULL && piece->text == NULL ? piece : NULL;
}

static void
on_copy_image_clicked (GtkButton *button, Piece *piece)
{
  if (piece->pixels != NULL)
    tf_image_export_copy (GTK_WIDGET (button), piece->pixels, piece->size, piece->channels);
}

static void
on_save_image_clicked (GtkButton *button, Piece *piece)
{
  if (piece->pixels != NULL)
    tf_image_export_save (GTK_WIDGET (button), piece->pixels, piece->size, piece->channels, NULL,
                          "chat-image.png");
}

static GdkContentProvider *
on_image_drag_prepare (GtkDragSource *source, double x, double y, Piece *piece)
{
  if (piece->pixels == NULL)
    return NULL;
  return tf_image_export_drag_content (source, piece->pixels, piece->size, piece->channels, NULL);
}

static GtkWidget *
image_button_new (const char *icon, const char *label, const char *tooltip)
{
  GtkWidget *button = gtk_button_new ();
  GtkWidget *content = adw_button_content_new ();

  adw_button_content_set_icon_name (ADW_BUTTON_CONTENT (content), icon);
  adw_button_content_set_label (ADW_BUTTON_CONTENT (content), label);
  gtk_button_set_child (GTK_BUTTON (button), content);
  gtk_widget_set_tooltip_text (button, tooltip);
  gtk_widget_add_css_class (button, "flat");
  return button;
}

void
tf_message_row_begin_image (TfMessageRow *self)
{
  Piece *piece;
  GtkWidget *box, *actions, *copy, *save;
  GtkDragSource *drag = gtk_drag_source_new ();

  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  tf_message_row_set_waiting (self, FALSE);
  piece = g_new0 (Piece, 1);
  piece->widget = tf_image_view_new ();
  gtk_widget_set_size_request (piece->widget, IMAGE_SIDE, IMAGE_SIDE);
  gtk_widget_set_halign (piece->widget, GTK_ALIGN_START);
  gtk_widget_add_css_class (piece->widget, "message-image");
  gtk_widget_set_tooltip_text (piece->widget,
                               self->from_user ? _("The picture you attached; drag it to another program")
                                               : _("A picture the model drew; drag it to another program"));
  gtk_drag_source_set_actions (drag, GDK_ACTION_COPY);
  g_signal_connect (drag, "prepare", G_CALLBACK (on_image_drag_prepare), piece);
  gtk_widget_add_controller (piece->widget, GTK_EVENT_CONTROLLER (drag));

  /* Copy and Save As under the picture. */
  copy = image_button_new ("edit-copy-symbolic", _("Copy"), _("Copy the picture to the clipboard"));
  save = image_button_new ("document-save-symbolic", _("Save As…"),
                           _("Save the picture as a PNG file"));
  g_signal_connect (copy, "clicked", G_CALLBACK (on_copy_image_clicked), piece);
  g_signal_connect (save, "clicked", G_CALLBACK (on_save_image_clicked), piece);
  actions = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 0);
  gtk_widget_add_css_class (actions, "image-actions");
  gtk_box_append (GTK_BOX (actions), copy);
  gtk_box_append (GTK_BOX (actions), save);

  box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  gtk_box_append (GTK_BOX (box), piece->widget);
  gtk_box_append (GTK_BOX (box), actions);
  gtk_box_append (GTK_BOX (self->bubble), box);
  g_ptr_array_add (self->pieces, piece);
}

void
tf_message_row_update_image (TfMessageRow *self, GBytes *pixels, int size, int channels)
{
  Piece *piece;

  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  piece = last_image_piece (self);
  if (piece == NULL)
    {
      tf_message_row_begin_image (self);
      piece = last_image_piece (self);
    }
  tf_image_view_set_bytes (TF_IMAGE_VIEW (piece->widget), pixels, size, channels);
  g_clear_pointer (&piece->pixels, g_bytes_unref);
  piece->pixels = pixels != NULL ? g_bytes_ref (pixels) : NULL;
  piece->size = size;
  piece->channels = channels;
}

void
tf_message_row_add_image (TfMessageRow *self, GBytes *pixels, int size, int channels)
{
  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  tf_message_row_begin_image (self);
  tf_message_row_update_image (self, pixels, size, channels);
}

char *
tf_message_row_get_text (TfMessageRow *self)
{
  GString *text = g_string_new (NULL);

  g_return_val_if_fail (TF_IS_MESSAGE_ROW (self), NULL);
  for (guint i = 0; i < self->pieces->len; i++)
    {
      Piece *piece = g_ptr_array_index (self->pieces, i);

      if (piece->text != NULL)
        g_string_append (text, piece->text->str);
    }
  return g_string_free (text, FALSE);
}

GPtrArray *
tf_message_row_get_tokens (TfMessageRow *self)
{
  GPtrArray *tokens;

  g_return_val_if_fail (TF_IS_MESSAGE_ROW (self), NULL);
  if (self->n_tokens == 0)
    return NULL;
  tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) tf_token_free);
  for (guint i = 0; i < self->pieces->len; i++)
    {
      Piece *piece = g_ptr_array_index (self->pieces, i);

      for (guint k = 0; piece->tokens != NULL && k < piece->tokens->len; k++)
        {
          const TokenSpan *span = &g_array_index (piece->tokens, TokenSpan, k);
          TfToken *token = g_new0 (TfToken, 1);

          token->text = g_strndup (piece->text->str + span->start, span->end - span->start);
          token->probability = span->probability;
          token->n_alternatives = span->n_alternatives;
          for (int a = 0; a < span->n_alternatives; a++)
            {
              token->alternative_texts[a] = g_strdup (span->alternative_texts[a]);
              token->alternative_probabilities[a] = span->alternative_probabilities[a];
            }
          g_ptr_array_add (tokens, token);
        }
    }
  return tokens;
}

guint
tf_message_row_get_n_tokens (TfMessageRow *self)
{
  g_return_val_if_fail (TF_IS_MESSAGE_ROW (self), 0);
  return self->n_tokens;
}

void
tf_message_row_set_footer (TfMessageRow *self, const char *footer)
{
  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  gtk_label_set_text (GTK_LABEL (self->footer_label), footer != NULL ? footer : "");
  gtk_widget_set_visible (self->footer_label, footer != NULL);
}

void
tf_message_row_set_waiting (TfMessageRow *self, gboolean waiting)
{
  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  gtk_widget_set_visible (self->waiting_label, waiting);
}

void
tf_message_row_set_show_tokens (TfMessageRow *self, gboolean show_tokens)
{
  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  if (self->show_tokens == show_tokens)
    return;
  self->show_tokens = show_tokens;
  for (guint i = 0; i < self->pieces->len; i++)
    {
      Piece *piece = g_ptr_array_index (self->pieces, i);

      if (piece->text == NULL)
        continue;
      gtk_widget_set_has_tooltip (piece->widget, show_tokens);
      piece_render (self, piece);
    }
}

/* ---- Versions ----------------------------------------------------------- */

void
tf_message_row_set_versions (TfMessageRow *self, guint shown, guint n_versions)
{
  g_autofree char *position = NULL;

  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  self->shown_version = shown;
  self->n_versions = n_versions;
  gtk_widget_set_visible (self->versions_box, n_versions > 1);
  if (n_versions < 2)
    return;
  /* Translators: which version of a reply is shown, "2 / 3" */
  position = g_strdup_printf (_("%u / %u"), shown + 1, n_versions);
  gtk_label_set_text (GTK_LABEL (self->versions_label), position);
  gtk_widget_set_sensitive (self->previous_button, shown > 0);
  gtk_widget_set_sensitive (self->next_button, shown + 1 < n_versions);
}

guint
tf_message_row_get_n_versions (TfMessageRow *self)
{
  g_return_val_if_fail (TF_IS_MESSAGE_ROW (self), 0);
  return self->n_versions;
}

void
tf_message_row_focus_versions (TfMessageRow *self)
{
  g_return_if_fail (TF_IS_MESSAGE_ROW (self));
  if (!gtk_widget_grab_focus (self->shown_version > 0 ? self->previous_button : self->next_button))
    gtk_widget_grab_focus (self->next_button);
}

static void
on_previous_clicked (TfMessageRow *self)
{
  if (self->shown_version > 0)
    g_signal_emit (self, signals[SIGNAL_SHOW_VERSION], 0, self->shown_version - 1);
}

static void
on_next_clicked (TfMessageRow *self)
{
  if (self->shown_version + 1 < self->n_versions)
    g_signal_emit (self, signals[SIGNAL_SHOW_VERSION], 0, self->shown_version + 1);
}

static GtkWidget *
version_button_new (const char *icon, const char *tooltip)
{
  GtkWidget *button = gtk_button_new_from_icon_name (icon);

  gtk_widget_add_css_class (button, "flat");
  gtk_widget_add_css_class (button, "circular");
  gtk_widget_set_tooltip_text (button, tooltip);
  return button;
}

/* ---- The object --------------------------------------------------------- */

static void
tf_message_row_dispose (GObject *object)
{
  TfMessageRow *self = TF_MESSAGE_ROW (object);

  g_clear_pointer (&self->box, gtk_widget_unparent);
  G_OBJECT_CLASS (tf_message_row_parent_class)->dispose (object);
}

static void
tf_message_row_finalize (GObject *object)
{
  TfMessageRow *self = TF_MESSAGE_ROW (object);

  g_ptr_array_unref (self->pieces);
  G_OBJECT_CLASS (tf_message_row_parent_class)->finalize (object);
}

static void
tf_message_row_class_init (TfMessageRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_message_row_dispose;
  object_class->finalize = tf_message_row_finalize;
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "tf-message-row");

  signals[SIGNAL_SHOW_VERSION] =
    g_signal_new ("show-version", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_UINT);
}

static void
tf_message_row_init (TfMessageRow *self)
{
  self->pieces = g_ptr_array_new_with_free_func ((GDestroyNotify) piece_free);

  self->box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  self->role_label = gtk_label_new (NULL);
  gtk_widget_add_css_class (self->role_label, "message-role");
  self->bubble = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  gtk_widget_add_css_class (self->bubble, "message-bubble");
  self->waiting_label = gtk_label_new ("…");
  gtk_widget_add_css_class (self->waiting_label, "dim-label");
  gtk_widget_set_halign (self->waiting_label, GTK_ALIGN_START);
  gtk_widget_set_visible (self->waiting_label, FALSE);
  self->footer_label = gtk_label_new (NULL);
  gtk_widget_add_css_class (self->footer_label, "message-footer");
  gtk_widget_add_css_class (self->footer_label, "dim-label");
  gtk_label_set_xalign (GTK_LABEL (self->footer_label), 0.0f);
  gtk_widget_set_visible (self->footer_label, FALSE);

  self->versions_box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 2);
  gtk_widget_add_css_class (self->versions_box, "message-versions");
  self->previous_button = version_button_new ("go-previous-symbolic", _("Earlier version"));
  self->versions_label = gtk_label_new (NULL);
  gtk_widget_add_css_class (self->versions_label, "numeric");
  self->next_button = version_button_new ("go-next-symbolic", _("Later version"));
  g_signal_connect_swapped (self->previous_button, "clicked", G_CALLBACK (on_previous_clicked),
                            self);
  g_signal_connect_swapped (self->next_button, "clicked", G_CALLBACK (on_next_clicked), self);
  gtk_box_append (GTK_BOX (self->versions_box), self->previous_button);
  gtk_box_append (GTK_BOX (self->versions_box), self->versions_label);
  gtk_box_append (GTK_BOX (self->versions_box), self->next_button);
  gtk_widget_set_visible (self->versions_box, FALSE);
  self->under_box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_box_append (GTK_BOX (self->under_box), self->versions_box);
  gtk_box_append (GTK_BOX (self->under_box), self->footer_label);

  gtk_box_append (GTK_BOX (self->bubble), self->waiting_label);
  gtk_box_append (GTK_BOX (self->box), self->role_label);
  gtk_box_append (GTK_BOX (self->box), self->bubble);
  gtk_box_append (GTK_BOX (self->box), self->under_box);
  gtk_widget_set_parent (self->box, GTK_WIDGET (self));
}
