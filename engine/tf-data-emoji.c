/* tf-data-emoji.c: Noto Color Emoji rendered by Cairo, named by Unicode's
 * emoji-test.txt (SPEC §5).
 *
 * The emoji are the fully-qualified entries of emoji-test.txt without
 * skin-tone modifiers (U+1F3FB–U+1F3FF). Each is drawn as one glyph of the
 * font: a single code point through the font's character map, a sequence
 * (flags, keycaps, ZWJ sequences) through the ligatures of its GSUB table.
 * Sequences that map to no single glyph that way are left out.
 *
 * Example i is the pair (emoji i / A, augmentation i % A) of the split's
 * list of pairs, where an augmentation is a scale, a position (the cells of
 * the shapes grid; only the centre at the large scale) and a background
 * colour, all stated in the caption. A pair is held out when a hash of the
 * emoji's code points and the augmentation's names is 0 modulo 20, so the
 * split does not move when the files gain or lose emoji.
 *
 * Each (emoji, scale) glyph is rendered once, on first use, and kept (up
 * to a memory budget); an example is then a background fill and one blend.
 * Getting examples is safe from several threads.
 *
 * The font is NotoColorEmoji.ttf in @dir if there is one there, else
 * Debian's. */
#include "tf-data-private.h"
#include "tf-data-shapes.h"
#include "tf-config.h"
#include "tf-image.h"

#include <cairo.h>
#include <cairo-ft.h>
#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_TRUETYPE_TABLES_H
#include FT_TRUETYPE_TAGS_H
#include <math.h>
#include <string.h>

#define HELDOUT_EVERY 20
/* Longest code point sequence read (the longest in Emoji 15 has 10). */
#define MAX_SEQUENCE 16
/* Rendered glyphs are kept when all of them together take at most this
 * (about 10 MB at 32×32, 160 MB at 128×128); larger images draw each time. */
#define GLYPH_CACHE_MAX_BYTES (256.0 * 1024 * 1024)
/* The emoji drawn to check that Cairo draws the font's colours. */
#define CHECK_CODE_POINT 0x1F600u

typedef struct {
  char  *name;       /* for captions: "pizza", "flag of japan" */
  char  *key;        /* the code points, "1F1EF 1F1F5": what the held-out hash reads */
  char  *group;      /* "Food & Drink" */
  char  *subgroup;   /* "food-prepared" */
  guint  glyph;
} Emoji;

static const struct {
  const char *name;
  double      fraction;   /* of the canvas */
} scales[] = {
  { "small",  0.40 },
  { "medium", 0.60 },
  { "large",  0.90 },
};
#define N_SCALES ((int) G_N_ELEMENTS (scales))
#define SCALE_LARGE 2

static const struct {
  const char *name;
  guint8      rgb[3];
} backgrounds[] = {
  { "white",  { 255, 255, 255 } },
  { "black",  {   0,   0,   0 } },
  { "grey",   { 128, 128, 128 } },
  { "blue",   {  40,  90, 220 } },
  { "yellow", { 250, 220,  60 } },
  { "pink",   { 250, 170, 200 } },
  { "green",  {  60, 170,  80 } },
  { "purple", { 130,  60, 180 } },
};
#define N_BACKGROUNDS ((int) G_N_ELEMENTS (backgrounds))

typedef struct {
  int scale;
  int cell;         /* of the shapes' 3×3 grid */
  int background;
} Augmentation;

typedef struct {
  TfDataSource         parent;
  Emoji               *emoji;
  int                  n_emoji;
  Augmentation        *augmentations;
  int                  n_augmentations;
  uint32_t            *pairs;        /* the split's emoji × n_augmentations + augmentation */
  cairo_font_face_t   *font_face;
  cairo_scaled_font_t *fonts[N_SCALES];
  int                  glyph_size[N_SCALES];   /* pixels */
  GMutex               lock;         /* guards the glyph cache and the fonts */
  guint8             **glyphs;       /* n_emoji × N_SCALES premultiplied RGBA (each NULL
                                      * until drawn), or NULL: no cache */
} EmojiSource;

/* --- the font ------------------------------------------------------------ */

typedef struct {
  FT_Library library;
  FT_Face    face;
} FontFile;

static const cairo_user_data_key_t font_file_key;

/* Cairo holds the face while any font made from it lives (its caches may
 * keep one past our last reference), so the face goes with the font face. */
static void
font_file_free (void *data)
{
  FontFile *file = data;
  if (file->face != NULL)
    FT_Done_Face (file->face);
  FT_Done_FreeType (file->library);
  g_free (file);
}

/* Ligatures of the font's GSUB table (LookupType 4, directly or through
 * LookupType 7 extensions): "glyph,glyph,…" → ligature glyph. The first
 * lookup that has a sequence wins, as in a shaper. Any offset outside the
 * table ends the reading: what was read so far is kept. */
typedef struct {
  const guint8 *data;
  gsize         len;
  gboolean      ok;
} TableReader;

static guint
read_u16 (TableReader *t, gsize offset)
{
  if (!t->ok || offset > t->len || t->len - offset < 2)
    {
      t->ok = FALSE;
      return 0;
    }
  return (guint) t->data[offset] << 8 | t->data[offset + 1];
}

static guint32
read_u32 (TableReader *t, gsize offset)
{
  guint32 hi = read_u16 (t, offset);
  return hi << 16 | read_u16 (t, offset + 2);
}

/* The glyphs of a Coverage table, in coverage order. */
static GArray *
read_coverage (TableReader *t, gsize offset)
{
  GArray *glyphs = g_array_new (FALSE, FALSE, sizeof (guint));
  guint format = read_u16 (t, offset);
  guint count = read_u16 (t, offset + 2);
  for (guint i = 0; i < count && t->ok; i++)
    {
      if (format == 1)
        {
          guint g = read_u16 (t, offset + 4 + 2 * i);
          g_array_append_val (glyphs, g);
        }
      else if (format == 2)
        {
          guint first = read_u16 (t, offset + 4 + 6 * i);
          guint last = read_u16 (t, offset + 6 + 6 * i);
          for (guint g = first; g <= last && t->ok; g++)
            g_array_append_val (glyphs, g);
        }
      else
        t->ok = FALSE;
    }
  return glyphs;
}

static char *
glyph_key (const guint *glyphs, int n)
{
  GString *key = g_string_new (NULL);
  for (int i = 0; i < n; i++)
    g_string_append_printf (key, i > 0 ? ",%u" : "%u", glyphs[i]);
  return g_string_free (key, FALSE);
}

static void
read_ligature_subtable (TableReader *t, gsize sub, GHashTable *ligatures)
{
  if (read_u16 (t, sub) != 1)
    return;
  g_autoptr (GArray) first = read_coverage (t, sub + read_u16 (t, sub + 2));
  guint n_sets = read_u16 (t, sub + 4);
  for (guint s = 0; s < n_sets && s < first->len && t->ok; s++)
    {
      gsize set = sub + read_u16 (t, sub + 6 + 2 * s);
      guint n_ligatures = read_u16 (t, set);
      for (guint l = 0; l < n_ligatures && t->ok; l++)
        {
          gsize lig = set + read_u16 (t, set + 2 + 2 * l);
          guint glyph = read_u16 (t, lig);
          guint n_components = read_u16 (t, lig + 2);
          if (n_components < 2 || n_components > MAX_SEQUENCE)
            continue;
          guint components[MAX_SEQUENCE];
          components[0] = g_array_index (first, guint, s);
          for (guint c = 1; c < n_components; c++)
            components[c] = read_u16 (t, lig + 4 + 2 * (c - 1));
          if (!t->ok)
            break;
          char *key = glyph_key (components, (int) n_components);
          if (!g_hash_table_contains (ligatures, key))
            g_hash_table_insert (ligatures, key, GUINT_TO_POINTER (glyph));
          else
            g_free (key);
        }
    }
}

static GHashTable *
read_ligatures (FT_Face face)
{
  GHashTable *ligatures = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  FT_ULong len = 0;
  if (FT_Load_Sfnt_Table (face, TTAG_GSUB, 0, NULL, &len) != 0 || len == 0)
    return ligatures;
  g_autofree guint8 *data = g_malloc (len);
  if (FT_Load_Sfnt_Table (face, TTAG_GSUB, 0, data, &len) != 0)
    return ligatures;

  TableReader t = { data, len, TRUE };
  gsize list = read_u16 (&t, 8);
  guint n_lookups = read_u16 (&t, list);
  for (guint i = 0; i < n_lookups && t.ok; i++)
    {
      gsize lookup = list + read_u16 (&t, list + 2 + 2 * i);
      guint type = read_u16 (&t, lookup);
      guint n_subtables = read_u16 (&t, lookup + 4);
      for (guint s = 0; s < n_subtables && t.ok; s++)
        {
          gsize sub = lookup + read_u16 (&t, lookup + 6 + 2 * s);
          guint sub_type = type;
          if (type == 7)
            {
              sub_type = read_u16 (&t, sub + 2);
              sub += read_u32 (&t, sub + 4);
            }
          if (sub_type == 4)
            read_ligature_subtable (&t, sub, ligatures);
        }
    }
  return ligatures;
}

/* The one glyph that draws @cps, or 0. Variation selectors are dropped:
 * the font draws emoji presentation anyway and its ligatures leave them
 * out. */
static guint
glyph_for_sequence (FT_Face face, GHashTable *ligatures, const guint32 *cps, int n_cps)
{
  guint glyphs[MAX_SEQUENCE];
  int n = 0;
  for (int i = 0; i < n_cps; i++)
    {
      if (cps[i] == 0xFE0F || cps[i] == 0xFE0E)
        continue;
      glyphs[n] = FT_Get_Char_Index (face, cps[i]);
      if (glyphs[n] == 0)
        return 0;
      n++;
    }
  if (n == 1)
    return glyphs[0];
  if (n == 0)
    return 0;
  g_autofree char *key = glyph_key (glyphs, n);
  return GPOINTER_TO_UINT (g_hash_table_lookup (ligatures, key));
}

/* --- emoji-test.txt ------------------------------------------------------ */

static void
emoji_clear (Emoji *e)
{
  g_free (e->name);
  g_free (e->key);
  g_free (e->group);
  g_free (e->subgroup);
}

/* The caption name of a CLDR short name: lower case, ASCII quotes, and the
 * "base: qualifier" names said as phrases ("flag: Japan" → "flag of japan",
 * "woman: red hair" → "woman with red hair", "family: man, woman, boy" →
 * "family of man, woman and boy"). */
static char *
caption_name (const char *cldr)
{
  g_autofree char *lower = g_utf8_strdown (cldr, -1);
  GString *s = g_string_new (lower);
  g_string_replace (s, "\u2019", "'", 0);
  g_string_replace (s, "\u201c", "\"", 0);
  g_string_replace (s, "\u201d", "\"", 0);

  const char *colon = strstr (s->str, ": ");
  if (colon == NULL)
    return g_string_free (s, FALSE);
  g_autofree char *base = g_strndup (s->str, (gsize) (colon - s->str));
  g_autofree char *rest = g_strdup (colon + 2);
  g_string_free (s, TRUE);

  if (strcmp (base, "keycap") == 0)
    return g_strdup_printf ("keycap %s", rest);
  if (strcmp (rest, "bald") == 0)
    return g_strdup_printf ("bald %s", base);
  if (strcmp (rest, "beard") == 0)
    return g_strdup_printf ("%s with a beard", base);
  if (g_str_has_suffix (rest, " hair"))
    return g_strdup_printf ("%s with %s", base, rest);
  /* A list: "a, b, c" → "a, b and c". */
  char *last_comma = g_strrstr (rest, ", ");
  if (last_comma != NULL)
    {
      *last_comma = '\0';
      return g_strdup_printf ("%s of %s and %s", base, rest, last_comma + 2);
    }
  return g_strdup_printf ("%s of %s", base, rest);
}

static gboolean
is_skin_tone (guint32 cp)
{
  return cp >= 0x1F3FB && cp <= 0x1F3FF;
}

/* Reads the usable emoji of @text into @out; counts the fully-qualified
 * entries that the font cannot draw as one glyph in @n_undrawable. Without
 * a font (@face NULL) every fully-qualified entry is taken, glyph 0. */
static gboolean
parse_emoji_test (const char *path, const char *text, FT_Face face, GHashTable *ligatures,
                  GArray *out, int *n_undrawable, GError **error)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  g_autofree char *group = g_strdup ("");
  g_autofree char *subgroup = g_strdup ("");
  *n_undrawable = 0;
  for (int ln = 0; lines[ln] != NULL; ln++)
    {
      char *line = g_strstrip (lines[ln]);
      if (g_str_has_prefix (line, "# group:"))
        {
          g_free (group);
          group = g_strstrip (g_strdup (line + strlen ("# group:")));
          continue;
        }
      if (g_str_has_prefix (line, "# subgroup:"))
        {
          g_free (subgroup);
          subgroup = g_strstrip (g_strdup (line + strlen ("# subgroup:")));
          continue;
        }
      if (line[0] == '\0' || line[0] == '#')
        continue;

      /* CODE POINTS ; STATUS # EMOJI EVERSION NAME */
      char *semi = strchr (line, ';');
      char *hash = semi != NULL ? strchr (semi, '#') : NULL;
      if (hash == NULL)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s:%d: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'", path, ln + 1);
          return FALSE;
        }
      *semi = '\0';
      *hash = '\0';
      if (strcmp (g_strstrip (semi + 1), "fully-qualified") != 0)
        continue;

      g_auto (GStrv) hex = g_strsplit_set (g_strstrip (line), " \t", -1);
      guint32 cps[MAX_SEQUENCE];
      int n_cps = 0;
      gboolean skin_tone = FALSE;
      for (int i = 0; hex[i] != NULL; i++)
        {
          if (hex[i][0] == '\0')
            continue;
          guint64 cp;
          if (n_cps == MAX_SEQUENCE
              || !g_ascii_string_to_unsigned (hex[i], 16, 0, 0x10FFFF, &cp, NULL))
            {
              g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                           "%s:%d: code point '%s' is not a hexadecimal number up to 10FFFF "
                           "(or there are more than %d)", path, ln + 1, hex[i], MAX_SEQUENCE);
              return FALSE;
            }
          cps[n_cps++] = (guint32) cp;
          skin_tone |= is_skin_tone ((guint32) cp);
        }

      /* After '#': the emoji, its version ("E0.6"), then the name. */
      char *p = hash + 1;
      while (*p == ' ')
        p++;
      char *version = strchr (p, ' ');
      while (version != NULL && *version == ' ')
        version++;
      char *name = version != NULL && version[0] == 'E' && g_ascii_isdigit (version[1])
                   ? strchr (version, ' ') : NULL;
      if (n_cps == 0 || name == NULL || *g_strstrip (name) == '\0')
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s:%d: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'", path, ln + 1);
          return FALSE;
        }
      if (skin_tone)
        continue;

      guint glyph = face != NULL ? glyph_for_sequence (face, ligatures, cps, n_cps) : 0;
      if (face != NULL && glyph == 0)
        {
          (*n_undrawable)++;
          continue;
        }
      GString *key = g_string_new (NULL);
      for (int i = 0; i < n_cps; i++)
        g_string_append_printf (key, i > 0 ? " %04X" : "%04X", cps[i]);
      Emoji e = {
        .name = caption_name (name),
        .key = g_string_free (key, FALSE),
        .group = g_strdup (group),
        .subgroup = g_strdup (subgroup),
        .glyph = glyph,
      };
      g_array_append_val (out, e);
    }
  return TRUE;
}

/* The contents of emoji-test.txt, or NULL with an error that names the
 * package when it is missing. */
static char *
read_emoji_test (const char *path, GError **error)
{
  char *text = NULL;
  g_autoptr (GError) read_error = NULL;
  if (g_file_get_contents (path, &text, NULL, &read_error))
    return text;
  if (g_error_matches (read_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: no such file (Debian package unicode-data)",
                 path);
  else
    g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s", read_error->message);
  return NULL;
}

gboolean
tf_data_emoji_read_names (const char *dir, GPtrArray *names, GPtrArray *groups, GError **error)
{
  g_autofree char *path = g_build_filename (dir != NULL ? dir : EMOJI_DEFAULT_DIR,
                                            EMOJI_TEST_FILE, NULL);
  g_autofree char *text = read_emoji_test (path, error);
  if (text == NULL)
    return FALSE;
  g_autoptr (GArray) emoji = g_array_new (FALSE, TRUE, sizeof (Emoji));
  g_array_set_clear_func (emoji, (GDestroyNotify) emoji_clear);
  int n_undrawable = 0;
  if (!parse_emoji_test (path, text, NULL, NULL, emoji, &n_undrawable, error))
    return FALSE;
  for (guint i = 0; i < emoji->len; i++)
    {
      Emoji *e = &g_array_index (emoji, Emoji, i);
      g_ptr_array_add (names, g_steal_pointer (&e->name));
      g_ptr_array_add (groups, g_steal_pointer (&e->group));
    }
  return TRUE;
}

/* --- rendering ----------------------------------------------------------- */

/* Draws @glyph centred in a size × size square of premultiplied RGBA. */
static guint8 *
render_glyph (cairo_scaled_font_t *font, guint glyph, int size)
{
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, size, size);
  cairo_t *cr = cairo_create (surface);
  cairo_set_scaled_font (cr, font);
  cairo_glyph_t g = { glyph, 0, 0 };
  cairo_text_extents_t ext;
  cairo_scaled_font_glyph_extents (font, &g, 1, &ext);
  g.x = (size - ext.width) / 2 - ext.x_bearing;
  g.y = (size - ext.height) / 2 - ext.y_bearing;
  cairo_show_glyphs (cr, &g, 1);
  cairo_destroy (cr);
  cairo_surface_flush (surface);

  guint8 *rgba = g_new (guint8, (size_t) size * size * 4);
  const guint8 *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  for (int y = 0; y < size; y++)
    {
      const uint32_t *row = (const uint32_t *) (data + (size_t) y * stride);
      for (int x = 0; x < size; x++)
        {
          guint8 *o = rgba + ((size_t) y * size + x) * 4;
          o[0] = (guint8) (row[x] >> 16);
          o[1] = (guint8) (row[x] >> 8);
          o[2] = (guint8) row[x];
          o[3] = (guint8) (row[x] >> 24);
        }
    }
  cairo_surface_destroy (surface);
  return rgba;
}

/* The glyph of (@emoji, @scale): from the cache, or drawn now (then
 * *@owned is set and the caller frees it) when the cache is off. */
static const guint8 *
glyph_pixels (EmojiSource *self, int emoji, int scale, guint8 **owned)
{
  *owned = NULL;
  g_mutex_lock (&self->lock);
  const guint8 *pixels;
  if (self->glyphs != NULL)
    {
      guint8 **slot = &self->glyphs[(size_t) emoji * N_SCALES + scale];
      if (*slot == NULL)
        *slot = render_glyph (self->fonts[scale], self->emoji[emoji].glyph,
                              self->glyph_size[scale]);
      pixels = *slot;
    }
  else
    pixels = *owned = render_glyph (self->fonts[scale], self->emoji[emoji].glyph,
                                    self->glyph_size[scale]);
  g_mutex_unlock (&self->lock);
  return pixels;
}

/* Whether Cairo draws the font in colour: a blank or grey glyph means a
 * Cairo or FreeType without colour bitmap support. */
static gboolean
draws_colour (cairo_scaled_font_t *font, guint glyph, int size)
{
  g_autofree guint8 *rgba = render_glyph (font, glyph, size);
  int coloured = 0;
  for (size_t i = 0; i < (size_t) size * size; i++)
    {
      const guint8 *p = rgba + 4 * i;
      int hi = MAX (p[0], MAX (p[1], p[2])), lo = MIN (p[0], MIN (p[1], p[2]));
      coloured += p[3] > 128 && hi - lo > 64;
    }
  return coloured > 0;
}

/* The example image: the background, and the glyph blended at its place. */
static void
compose (EmojiSource *self, const guint8 *glyph, const Augmentation *aug, float *pixels)
{
  int size = self->parent.image_size;
  int gs = self->glyph_size[aug->scale];
  int ox = (int) lround ((aug->cell % 3) * (size - gs) / 2.0);
  int oy = (int) lround ((aug->cell / 3) * (size - gs) / 2.0);
  const guint8 *bg = backgrounds[aug->background].rgb;

  TfImage image = { size, size, g_new (uint8_t, (size_t) size * size * 4) };
  for (size_t i = 0; i < (size_t) size * size; i++)
    {
      uint8_t *o = image.rgba + 4 * i;
      o[0] = bg[0], o[1] = bg[1], o[2] = bg[2], o[3] = 255;
    }
  for (int y = 0; y < gs; y++)
    for (int x = 0; x < gs; x++)
      {
        const guint8 *p = glyph + ((size_t) y * gs + x) * 4;
        if (p[3] == 0)
          continue;
        uint8_t *o = image.rgba + ((size_t) (oy + y) * size + (ox + x)) * 4;
        for (int k = 0; k < 3; k++)
          o[k] = (uint8_t) MIN (255, p[k] + (bg[k] * (255 - p[3]) + 127) / 255);
      }
  tf_image_to_model (&image, size, self->parent.channels, pixels);
  tf_image_clear (&image);
}

/* --- captions ------------------------------------------------------------ */

static char *
caption (const Emoji *e, const Augmentation *aug, TfRng *rng)
{
  const char *scale = scales[aug->scale].name;
  GString *s = g_string_new (NULL);
  switch (tf_rng_below (rng, 3))
    {
    case 0:
      g_string_append_printf (s, "a %s %s", scale, e->name);
      break;
    case 1:
      g_string_append_printf (s, "a %s %s emoji", scale, e->name);
      break;
    default:
      g_string_append_printf (s, "a %s emoji of %s", scale, e->name);
      break;
    }
  /* Large emoji are always centred: saying so is optional. */
  if (aug->scale != SCALE_LARGE || tf_rng_below (rng, 2) == 0)
    g_string_append_printf (s, " %s", tf_shapes_cell_phrase (aug->cell));
  g_string_append_printf (s, " on a %s background", backgrounds[aug->background].name);
  return g_string_free (s, FALSE);
}

/* --- the data source ----------------------------------------------------- */

static gboolean
emoji_get (TfDataSource *source, int64_t index, TfRng *rng, TfExample *example, GError **error)
{
  EmojiSource *self = (EmojiSource *) source;
  uint32_t pair = self->pairs[index];
  int e = (int) (pair / (uint32_t) self->n_augmentations);
  const Augmentation *aug = &self->augmentations[pair % (uint32_t) self->n_augmentations];

  g_autofree guint8 *owned = NULL;
  const guint8 *glyph = glyph_pixels (self, e, aug->scale, &owned);
  example->kind = TF_EXAMPLE_IMAGE;
  example->size = source->image_size;
  example->channels = source->channels;
  example->pixels = g_new (float, (size_t) source->image_size * source->image_size * source->channels);
  compose (self, glyph, aug, example->pixels);
  example->caption = caption (&self->emoji[e], aug, rng);
  example->subject = g_strdup (self->emoji[e].name);
  example->label = e;
  return TRUE;
}

static const TfDataSourceClass emoji_class;

gboolean
tf_data_emoji_render_as (TfDataSource *source, int64_t index, int emoji, float *pixels,
                         GError **error)
{
  EmojiSource *self = (EmojiSource *) source;
  if (source->klass != &emoji_class || index < 0 || index >= source->size || emoji < 0
      || emoji >= self->n_emoji)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: no emoji %d at example %" G_GINT64_FORMAT " of an emoji source",
                   source->name, emoji, index);
      return FALSE;
    }
  const Augmentation *aug = &self->augmentations[self->pairs[index] %
                                                 (uint32_t) self->n_augmentations];
  g_autofree guint8 *owned = NULL;
  compose (self, glyph_pixels (self, emoji, aug->scale, &owned), aug, pixels);
  return TRUE;
}

static void
emoji_finalize (TfDataSource *source)
{
  EmojiSource *self = (EmojiSource *) source;
  if (self->glyphs != NULL)
    for (size_t i = 0; i < (size_t) self->n_emoji * N_SCALES; i++)
      g_free (self->glyphs[i]);
  g_free (self->glyphs);
  for (int s = 0; s < N_SCALES; s++)
    if (self->fonts[s] != NULL)
      cairo_scaled_font_destroy (self->fonts[s]);
  if (self->font_face != NULL)
    cairo_font_face_destroy (self->font_face);
  for (int i = 0; i < self->n_emoji; i++)
    emoji_clear (&self->emoji[i]);
  g_free (self->emoji);
  g_free (self->augmentations);
  g_free (self->pairs);
  g_mutex_clear (&self->lock);
}

static const TfDataSourceClass emoji_class = {
  .get = emoji_get,
  .finalize = emoji_finalize,
};

/* A stable 64-bit hash (FNV-1a, then a finalising mix). */
static uint64_t
stable_hash (const char *s)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s != '\0'; s++)
    h = (h ^ (guint8) *s) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static gboolean
pair_is_heldout (const Emoji *e, const Augmentation *aug)
{
  g_autofree char *id = g_strdup_printf ("%s|%s|%s|%s", e->key, scales[aug->scale].name,
                                         tf_shapes_cell_phrase (aug->cell),
                                         backgrounds[aug->background].name);
  return stable_hash (id) % HELDOUT_EVERY == 0;
}

/* Opens the font and creates its Cairo font face; @face is the FreeType
 * face for reading the character map and GSUB until the font face is
 * used. */
static cairo_font_face_t *
open_font (const char *path, FT_Face *face, GError **error)
{
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO,
                   "%s: no such file (Debian package fonts-noto-color-emoji)", path);
      return NULL;
    }
  FontFile *file = g_new0 (FontFile, 1);
  FT_Error fe = FT_Init_FreeType (&file->library);
  if (fe != 0)
    {
      g_free (file);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: FreeType did not start (error %d)", path,
                   fe);
      return NULL;
    }
  fe = FT_New_Face (file->library, path, 0, &file->face);
  if (fe != 0)
    {
      file->face = NULL;
      font_file_free (file);
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: FreeType cannot read it as a font (error %d)", path, fe);
      return NULL;
    }
  if (!FT_HAS_COLOR (file->face) || FT_Select_Charmap (file->face, FT_ENCODING_UNICODE) != 0)
    {
      font_file_free (file);
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: expected a colour font with a Unicode character map", path);
      return NULL;
    }

  *face = file->face;
  cairo_font_face_t *font_face = cairo_ft_font_face_create_for_ft_face (file->face, FT_LOAD_COLOR);
  if (cairo_font_face_set_user_data (font_face, &font_file_key, file, font_file_free)
      != CAIRO_STATUS_SUCCESS)
    {
      cairo_font_face_destroy (font_face);
      font_file_free (file);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: Cairo cannot use it", path);
      return NULL;
    }
  return font_face;
}

TfDataSource *
tf_data_emoji_new (const char *dir, TfSplit split, int image_size, int channels, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (image_size < 8 || image_size > 4096 || (channels != 1 && channels != 3))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "emoji: image size %d with %d channels, expected 8 to 4096 pixels and 1 or 3 "
                   "channels", image_size, channels);
      return NULL;
    }

  const char *emoji_dir = dir != NULL ? dir : EMOJI_DEFAULT_DIR;
  g_autofree char *test_path = g_build_filename (emoji_dir, EMOJI_TEST_FILE, NULL);
  g_autofree char *font_path = g_build_filename (emoji_dir, EMOJI_FONT_FILE, NULL);
  if (dir == NULL || !g_file_test (font_path, G_FILE_TEST_EXISTS))
    {
      g_free (font_path);
      font_path = g_strdup (EMOJI_FONT_SYSTEM_PATH);
    }

  g_autofree char *text = read_emoji_test (test_path, error);
  if (text == NULL)
    return NULL;

  FT_Face face = NULL;
  cairo_font_face_t *font_face = open_font (font_path, &face, error);
  if (font_face == NULL)
    return NULL;

  EmojiSource *self = (EmojiSource *) tf_data_source_alloc (&emoji_class, sizeof (EmojiSource),
                                                            "emoji", split, image_size, channels);
  g_mutex_init (&self->lock);
  self->font_face = font_face;

  g_autoptr (GHashTable) ligatures = read_ligatures (face);
  GArray *emoji = g_array_new (FALSE, TRUE, sizeof (Emoji));
  int n_undrawable = 0;
  gboolean parsed = parse_emoji_test (test_path, text, face, ligatures, emoji, &n_undrawable,
                                      error);
  self->n_emoji = (int) emoji->len;
  self->emoji = (Emoji *) g_array_free (emoji, FALSE);
  if (!parsed)
    {
      tf_data_source_free (&self->parent);
      return NULL;
    }
  if (self->n_emoji == 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: no fully-qualified emoji that %s draws as one glyph", test_path,
                   font_path);
      tf_data_source_free (&self->parent);
      return NULL;
    }
  g_debug ("emoji: %d emoji from %s; left out: %d sequence(s) that %s has no single glyph for",
           self->n_emoji, test_path, n_undrawable, font_path);

  /* One scaled font per scale: the strike's glyph box (136 × 128 pixels at
   * 109 ppem for Noto) shrunk to the scale's share of the canvas. */
  double box = 1.0, ppem = 1.0;
  if (face->num_fixed_sizes > 0)
    {
      box = MAX (face->available_sizes[0].width, face->available_sizes[0].height);
      ppem = face->available_sizes[0].y_ppem / 64.0;
    }
  cairo_font_options_t *options = cairo_font_options_create ();
  for (int s = 0; s < N_SCALES; s++)
    {
      self->glyph_size[s] = MAX (1, (int) lround (scales[s].fraction * image_size));
      double font_size = self->glyph_size[s] * ppem / box;
      cairo_matrix_t font_matrix, ctm;
      cairo_matrix_init_scale (&font_matrix, font_size, font_size);
      cairo_matrix_init_identity (&ctm);
      self->fonts[s] = cairo_scaled_font_create (font_face, &font_matrix, &ctm, options);
    }
  cairo_font_options_destroy (options);
  if (cairo_scaled_font_status (self->fonts[SCALE_LARGE]) != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: Cairo cannot use it (%s)", font_path,
                   cairo_status_to_string (cairo_scaled_font_status (self->fonts[SCALE_LARGE])));
      tf_data_source_free (&self->parent);
      return NULL;
    }
  /* From here on the face is Cairo's. */
  guint check = FT_Get_Char_Index (face, CHECK_CODE_POINT);
  if (check == 0)
    check = self->emoji[0].glyph;
  if (!draws_colour (self->fonts[SCALE_LARGE], check, MAX (32, self->glyph_size[SCALE_LARGE])))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: Cairo drew no colour pixels for U+%04X (it needs Cairo and FreeType "
                   "with colour bitmap fonts)", font_path, CHECK_CODE_POINT);
      tf_data_source_free (&self->parent);
      return NULL;
    }
  /* The cache, when every glyph at every scale fits in the budget. */
  double cache_bytes = 0;
  for (int s = 0; s < N_SCALES; s++)
    cache_bytes += 4.0 * self->glyph_size[s] * self->glyph_size[s] * self->n_emoji;
  if (cache_bytes <= GLYPH_CACHE_MAX_BYTES)
    self->glyphs = g_new0 (guint8 *, (size_t) self->n_emoji * N_SCALES);

  /* Augmentations: every position that fits at each scale, × backgrounds. */
  GArray *augs = g_array_new (FALSE, FALSE, sizeof (Augmentation));
  for (int s = 0; s < N_SCALES; s++)
    for (int cell = 0; cell < TF_SHAPES_N_CELLS; cell++)
      {
        if (s == SCALE_LARGE && cell != 4)
          continue;
        for (int b = 0; b < N_BACKGROUNDS; b++)
          {
            Augmentation a = { s, cell, b };
            g_array_append_val (augs, a);
          }
      }
  self->n_augmentations = (int) augs->len;
  self->augmentations = (Augmentation *) g_array_free (augs, FALSE);

  GArray *pairs = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  for (int e = 0; e < self->n_emoji; e++)
    for (int a = 0; a < self->n_augmentations; a++)
      if (pair_is_heldout (&self->emoji[e], &self->augmentations[a]) == (split == TF_SPLIT_HELDOUT))
        {
          uint32_t pair = (uint32_t) e * (uint32_t) self->n_augmentations + (uint32_t) a;
          g_array_append_val (pairs, pair);
        }
  self->parent.size = pairs->len;
  self->pairs = (uint32_t *) g_array_free (pairs, FALSE);
  if (self->parent.size == 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: no emoji in the %s split", test_path,
                   split == TF_SPLIT_TRAIN ? "train" : "held-out");
      tf_data_source_free (&self->parent);
      return NULL;
    }

  char **subjects = g_new0 (char *, (size_t) self->n_emoji + 1);
  for (int e = 0; e < self->n_emoji; e++)
    subjects[e] = g_strdup (self->emoji[e].name);
  self->parent.subjects = subjects;
  return &self->parent;
}
