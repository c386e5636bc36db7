/* tf-data-shapes.c: Cairo-rendered scenes of simple shapes (SPEC §5).
 *
 * The canvas is a 3×3 grid of cells. An object is centred in its cell and
 * spans 0.8 of a cell (large) or 0.5 (small; it may move by up to 0.12 of a
 * cell, staying inside the large footprint), so neighbouring objects keep at
 * least 0.2 of a cell (2 pixels at 32×32) of white between them and the
 * analysis can separate them by connected components. */
#include "tf-data-shapes.h"
#include "tf-data-private.h"
#include "tf-config.h"
#include "tf-image.h"

#include <cairo.h>
#include <math.h>
#include <string.h>

/* Train seeds are [0, 2^40); held-out seeds start at 2^40. */
#define HELDOUT_SEED_BASE (INT64_C (1) << 40)
#define TRAIN_SIZE        (INT64_C (1) << 30)
#define HELDOUT_SIZE      10000

/* Half the extent of an object, in cell widths, per size. */
static const double object_radius[TF_SHAPES_N_SIZES] = { 0.25, 0.40 };
/* How far a small object's centre may move from its cell's centre. */
#define SMALL_JITTER 0.12

static const char *const shape_names[TF_SHAPES_N_SHAPES] = {
  "circle", "square", "triangle", "star", "heart", "cross",
};

static const struct {
  const char *name;
  guint8      rgb[3];
} colours[TF_SHAPES_N_COLOURS] = {
  { "red",    { 220,  30,  30 } },
  { "orange", { 245, 135,  10 } },
  { "yellow", { 240, 210,   0 } },
  { "green",  {  30, 150,  50 } },
  { "blue",   {  30,  80, 220 } },
  { "purple", { 130,  50, 180 } },
  { "pink",   { 250, 120, 200 } },
  { "black",  {  20,  20,  20 } },
};

static const char *const size_names[TF_SHAPES_N_SIZES] = { "small", "large" };

static const char *const cell_phrases[TF_SHAPES_N_CELLS] = {
  "at the top left", "at the top", "at the top right",
  "on the left", "in the centre", "on the right",
  "at the bottom left", "at the bottom", "at the bottom right",
};

/* Other ways to say a cell, chosen now and then for variety. */
static const char *const cell_variants[TF_SHAPES_N_CELLS] = {
  "in the top left corner", NULL, "in the top right corner",
  NULL, "in the middle", NULL,
  "in the bottom left corner", NULL, "in the bottom right corner",
};

const char *
tf_shapes_shape_name (int shape)
{
  return shape >= 0 && shape < TF_SHAPES_N_SHAPES ? shape_names[shape] : "?";
}

const char *
tf_shapes_colour_name (int colour)
{
  return colour >= 0 && colour < TF_SHAPES_N_COLOURS ? colours[colour].name : "?";
}

const char *
tf_shapes_size_name (int size)
{
  return size >= 0 && size < TF_SHAPES_N_SIZES ? size_names[size] : "?";
}

const char *
tf_shapes_cell_phrase (int cell)
{
  return cell >= 0 && cell < TF_SHAPES_N_CELLS ? cell_phrases[cell] : "?";
}

/* --- scenes ------------------------------------------------------------ */

void
tf_shapes_scene_for_index (TfSplit split, int64_t index, TfShapeScene *scene)
{
  g_return_if_fail (index >= 0 && (split == TF_SPLIT_HELDOUT || index < HELDOUT_SEED_BASE));

  uint64_t seed = (uint64_t) index + (split == TF_SPLIT_HELDOUT ? (uint64_t) HELDOUT_SEED_BASE : 0);
  TfRng rng;
  tf_rng_seed (&rng, seed);

  memset (scene, 0, sizeof *scene);
  scene->n = 1 + (int) tf_rng_below (&rng, TF_SHAPES_MAX_OBJECTS);

  /* Distinct cells: the first n of a partial Fisher–Yates shuffle. */
  int cells[TF_SHAPES_N_CELLS];
  for (int i = 0; i < TF_SHAPES_N_CELLS; i++)
    cells[i] = i;
  for (int i = 0; i < scene->n; i++)
    {
      int j = i + (int) tf_rng_below (&rng, (uint64_t) (TF_SHAPES_N_CELLS - i));
      int t = cells[i];
      cells[i] = cells[j];
      cells[j] = t;
    }

  for (int i = 0; i < scene->n; i++)
    {
      TfShapeObject *o = &scene->objects[i];
      o->shape = (int) tf_rng_below (&rng, TF_SHAPES_N_SHAPES);
      o->colour = (int) tf_rng_below (&rng, TF_SHAPES_N_COLOURS);
      o->size = (int) tf_rng_below (&rng, TF_SHAPES_N_SIZES);
      o->cell = cells[i];
      if (o->size == TF_SHAPE_SMALL)
        {
          o->dx = (float) ((2.0 * tf_rng_uniform (&rng) - 1.0) * SMALL_JITTER);
          o->dy = (float) ((2.0 * tf_rng_uniform (&rng) - 1.0) * SMALL_JITTER);
        }
    }
}

/* --- drawing ----------------------------------------------------------- */

/* Each shape as a path in the box [-1, 1]², roughly filling it. */
static void
shape_path (cairo_t *cr, int shape)
{
  switch (shape)
    {
    case TF_SHAPE_CIRCLE:
      cairo_arc (cr, 0, 0, 1, 0, 2 * G_PI);
      break;
    case TF_SHAPE_SQUARE:
      /* A little inside the box: a full square looks bigger than the rest. */
      cairo_rectangle (cr, -0.9, -0.9, 1.8, 1.8);
      break;
    case TF_SHAPE_TRIANGLE:
      cairo_move_to (cr, 0, -1);
      cairo_line_to (cr, 1, 0.9);
      cairo_line_to (cr, -1, 0.9);
      cairo_close_path (cr);
      break;
    case TF_SHAPE_STAR:
      /* Five points; a fat inner radius keeps it a star at a few pixels.
       * Shifted down so its bounding box is centred. */
      for (int k = 0; k < 10; k++)
        {
          double r = k % 2 == 0 ? 1.05 : 0.5;
          double a = -G_PI / 2 + k * G_PI / 5;
          double x = r * cos (a), y = r * sin (a) + 0.1;
          if (k == 0)
            cairo_move_to (cr, x, y);
          else
            cairo_line_to (cr, x, y);
        }
      cairo_close_path (cr);
      break;
    case TF_SHAPE_HEART:
      cairo_move_to (cr, 0, 0.95);
      cairo_curve_to (cr, -0.25, 0.7, -1.0, 0.25, -1.0, -0.35);
      cairo_curve_to (cr, -1.0, -0.95, -0.25, -1.1, 0, -0.55);
      cairo_curve_to (cr, 0.25, -1.1, 1.0, -0.95, 1.0, -0.35);
      cairo_curve_to (cr, 1.0, 0.25, 0.25, 0.7, 0, 0.95);
      cairo_close_path (cr);
      break;
    case TF_SHAPE_CROSS:
      {
        const double a = 0.33, b = 0.95;
        const double pts[12][2] = {
          { -a, -b }, { a, -b }, { a, -a }, { b, -a }, { b, a }, { a, a },
          { a, b }, { -a, b }, { -a, a }, { -b, a }, { -b, -a }, { -a, -a },
        };
        cairo_move_to (cr, pts[0][0], pts[0][1]);
        for (int k = 1; k < 12; k++)
          cairo_line_to (cr, pts[k][0], pts[k][1]);
        cairo_close_path (cr);
      }
      break;
    default:
      g_return_if_reached ();
    }
}

/* An opaque Cairo RGB24/ARGB32 surface → model pixels, through the one
 * conversion every image source uses. */
static void
surface_to_model (cairo_surface_t *surface, int size, int channels, float *pixels)
{
  cairo_surface_flush (surface);
  const guint8 *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  TfImage image = { size, size, g_new (uint8_t, (size_t) size * size * 4) };
  for (int y = 0; y < size; y++)
    {
      const uint32_t *row = (const uint32_t *) (data + (size_t) y * stride);
      uint8_t *out = image.rgba + (size_t) y * size * 4;
      for (int x = 0; x < size; x++)
        {
          uint32_t p = row[x];
          out[4 * x + 0] = (uint8_t) (p >> 16);
          out[4 * x + 1] = (uint8_t) (p >> 8);
          out[4 * x + 2] = (uint8_t) p;
          out[4 * x + 3] = 255;
        }
    }
  tf_image_to_model (&image, size, channels, pixels);
  tf_image_clear (&image);
}

void
tf_shapes_render (const TfShapeScene *scene, int size, int channels, float *pixels)
{
  g_return_if_fail (scene != NULL && scene->n >= 0 && scene->n <= TF_SHAPES_N_CELLS);
  g_return_if_fail (size > 0 && (channels == 1 || channels == 3));

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, size, size);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);

  double cell_width = size / 3.0;
  for (int i = 0; i < scene->n; i++)
    {
      const TfShapeObject *o = &scene->objects[i];
      if (o->shape < 0 || o->shape >= TF_SHAPES_N_SHAPES || o->colour < 0
          || o->colour >= TF_SHAPES_N_COLOURS || o->size < 0 || o->size >= TF_SHAPES_N_SIZES
          || o->cell < 0 || o->cell >= TF_SHAPES_N_CELLS)
        continue;
      double cx = (o->cell % 3 + 0.5 + o->dx) * cell_width;
      double cy = (o->cell / 3 + 0.5 + o->dy) * cell_width;
      double r = object_radius[o->size] * cell_width;
      cairo_save (cr);
      cairo_translate (cr, cx, cy);
      cairo_scale (cr, r, r);
      shape_path (cr, o->shape);
      cairo_restore (cr);
      const guint8 *rgb = colours[o->colour].rgb;
      cairo_set_source_rgb (cr, rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0);
      cairo_fill (cr);
    }
  cairo_destroy (cr);
  surface_to_model (surface, size, channels, pixels);
  cairo_surface_destroy (surface);
}

/* --- captions ---------------------------------------------------------- */

static void
append_object (GString *out, const TfShapeObject *o, TfRng *rng)
{
  const char *where = cell_phrases[o->cell];
  if (cell_variants[o->cell] != NULL && tf_rng_below (rng, 3) == 0)
    where = cell_variants[o->cell];
  g_string_append_printf (out, "a %s %s %s %s", size_names[o->size], colours[o->colour].name,
                          shape_names[o->shape], where);
}

char *
tf_shapes_caption (const TfShapeScene *scene, TfRng *rng)
{
  g_return_val_if_fail (scene != NULL && scene->n >= 1 && scene->n <= TF_SHAPES_N_CELLS, NULL);

  static const char *const counts[] = {
    NULL, NULL, "two", "three", "four", "five", "six", "seven", "eight", "nine",
  };
  static const char *const nouns[] = { "shapes", "objects" };

  GString *out = g_string_new (NULL);
  if (scene->n >= 2)
    {
      /* Half the time a count first: "two shapes: …". */
      if (tf_rng_below (rng, 2) == 0)
        g_string_append_printf (out, "%s %s: ", counts[scene->n],
                                nouns[tf_rng_below (rng, G_N_ELEMENTS (nouns))]);
    }

  /* The objects in a random order. */
  int order[TF_SHAPES_N_CELLS];
  for (int i = 0; i < scene->n; i++)
    order[i] = i;
  for (int i = scene->n - 1; i > 0; i--)
    {
      int j = (int) tf_rng_below (rng, (uint64_t) i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  for (int i = 0; i < scene->n; i++)
    {
      if (i > 0)
        g_string_append (out, i == scene->n - 1 ? " and " : ", ");
      append_object (out, &scene->objects[order[i]], rng);
    }
  return g_string_free (out, FALSE);
}

/* --- analysis ---------------------------------------------------------- */

/* A pixel counts as part of an object when it is this far from white (on
 * the scale where white is 0 and black 1). */
#define INK_THRESHOLD 0.15
/* Smaller blobs (in pixels at 32×32, scaled with the area) are noise. */
#define MIN_BLOB_PIXELS_32 3.0

/* Fraction of the way from white to @c along which @p lies (its coverage,
 * for an antialiased edge over white), and the squared distance of @p from
 * that line segment. */
static double
coverage_of (const double p[3], const double c[3], double *dist2)
{
  double num = 0, den = 0;
  for (int k = 0; k < 3; k++)
    {
      num += (1 - p[k]) * (1 - c[k]);
      den += (1 - c[k]) * (1 - c[k]);
    }
  double a = den > 0 ? CLAMP (num / den, 0.0, 1.0) : 0.0;
  double d2 = 0;
  for (int k = 0; k < 3; k++)
    {
      double e = p[k] - (1 - a * (1 - c[k]));
      d2 += e * e;
    }
  *dist2 = d2;
  return a;
}

/* What the analysis measures of a blob's shape. */
typedef struct {
  double fill;      /* area / (width × height) */
  double balance;   /* centroid below the middle, in heights */
  double spread;    /* mean squared column mass over its square mean */
} ShapeFeatures;

/* Measured on renders at 32 and 64 pixels (means over sizes): the balance
 * tells triangles, stars and hearts from the symmetric shapes, the fill
 * tells those apart. */
static const ShapeFeatures shape_prototypes[TF_SHAPES_N_SHAPES] = {
  [TF_SHAPE_CIRCLE]   = { 0.80,  0.000, 1.05 },
  [TF_SHAPE_SQUARE]   = { 1.00,  0.000, 0.96 },
  [TF_SHAPE_TRIANGLE] = { 0.60,  0.140, 1.20 },
  [TF_SHAPE_STAR]     = { 0.55,  0.042, 1.20 },
  [TF_SHAPE_HEART]    = { 0.72, -0.068, 1.06 },
  [TF_SHAPE_CROSS]    = { 0.575, 0.000, 1.23 },
};
/* How far apart features typically are within one shape. */
static const ShapeFeatures shape_feature_scale = { 0.06, 0.015, 0.10 };

/* Nearest prototype; -1 when the blob is too small to tell. */
static int
classify_shape (const ShapeFeatures *f, double extent_pixels)
{
  if (extent_pixels < 3.0)
    return -1;
  const ShapeFeatures *w = &shape_feature_scale;
  int best = -1;
  double best_d = G_MAXDOUBLE;
  for (int s = 0; s < TF_SHAPES_N_SHAPES; s++)
    {
      const ShapeFeatures *p = &shape_prototypes[s];
      double d = (f->fill - p->fill) * (f->fill - p->fill) / (w->fill * w->fill)
                 + (f->balance - p->balance) * (f->balance - p->balance) / (w->balance * w->balance)
                 + (f->spread - p->spread) * (f->spread - p->spread) / (w->spread * w->spread);
      if (d < best_d)
        {
          best_d = d;
          best = s;
        }
    }
  return best;
}

typedef struct {
  int        id;
  int        n_pixels;
  const int *pixels;   /* indices into the image */
  const int *label;    /* blob id of every pixel of the image, -1 for white */
} Blob;

static int
compare_objects (gconstpointer a, gconstpointer b)
{
  const TfShapeObject *x = a, *y = b;
  return (x->cell > y->cell) - (x->cell < y->cell);
}

/* Reads one blob: colour, coverage-weighted geometry, cell, size, shape. */
static void
analyse_blob (const float *pixels, int size, int channels, const Blob *blob, TfShapeObject *o)
{
  /* Colour: the palette colour whose white→colour line the blob's pixels
   * lie closest to, so antialiased edges vote for the right colour too. */
  int colour = -1;
  if (channels == 3)
    {
      double best = G_MAXDOUBLE;
      for (int c = 0; c < TF_SHAPES_N_COLOURS; c++)
        {
          double rgb[3] = { colours[c].rgb[0] / 255.0, colours[c].rgb[1] / 255.0,
                            colours[c].rgb[2] / 255.0 };
          double total = 0;
          for (int i = 0; i < blob->n_pixels; i++)
            {
              const float *px = pixels + (size_t) blob->pixels[i] * 3;
              double p[3] = { (px[0] + 1) / 2, (px[1] + 1) / 2, (px[2] + 1) / 2 };
              double d2;
              coverage_of (p, rgb, &d2);
              total += d2;
            }
          if (total < best)
            {
              best = total;
              colour = c;
            }
        }
    }

  /* Coverage of every pixel of the blob (its bounding box, so edge pixels
   * below the ink threshold count too). */
  int x0 = size, y0 = size, x1 = -1, y1 = -1;
  for (int i = 0; i < blob->n_pixels; i++)
    {
      int x = blob->pixels[i] % size, y = blob->pixels[i] / size;
      x0 = MIN (x0, x), x1 = MAX (x1, x), y0 = MIN (y0, y), y1 = MAX (y1, y);
    }
  x0 = MAX (x0 - 1, 0), y0 = MAX (y0 - 1, 0);
  x1 = MIN (x1 + 1, size - 1), y1 = MIN (y1 + 1, size - 1);
  int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  g_autofree double *alpha = g_new0 (double, (size_t) bw * bh);
  double ink_max = 0;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++)
      {
        size_t i = (size_t) y * size + x;
        const float *px = pixels + i * channels;
        double a = 0;
        if (blob->label[i] >= 0 && blob->label[i] != blob->id)
          a = 0;   /* another blob's pixel */
        else if (colour >= 0)
          {
            double rgb[3] = { colours[colour].rgb[0] / 255.0, colours[colour].rgb[1] / 255.0,
                              colours[colour].rgb[2] / 255.0 };
            double p[3] = { (px[0] + 1) / 2, (px[1] + 1) / 2, (px[2] + 1) / 2 };
            double d2;
            a = coverage_of (p, rgb, &d2);
          }
        else
          {
            double v = 0;
            for (int k = 0; k < channels; k++)
              v += (px[k] + 1) / 2;
            a = 1 - v / channels;
          }
        alpha[(size_t) (y - y0) * bw + (x - x0)] = a;
        ink_max = MAX (ink_max, a);
      }
  /* Without a colour, the darkest pixel stands for full coverage. */
  if (colour < 0 && ink_max > 0)
    for (size_t i = 0; i < (size_t) bw * bh; i++)
      alpha[i] = MIN (alpha[i] / ink_max, 1.0);

  double area = 0, mx = 0, my = 0, width = 0, height = 0, row_mid = 0, col_sq = 0;
  for (int y = 0; y < bh; y++)
    {
      double row_max = 0;
      for (int x = 0; x < bw; x++)
        {
          double a = alpha[(size_t) y * bw + x];
          area += a;
          mx += a * (x0 + x + 0.5);
          my += a * (y0 + y + 0.5);
          row_max = MAX (row_max, a);
        }
      height += row_max;
      row_mid += row_max * (y0 + y + 0.5);
    }
  for (int x = 0; x < bw; x++)
    {
      double col_max = 0, col_sum = 0;
      for (int y = 0; y < bh; y++)
        {
          col_max = MAX (col_max, alpha[(size_t) y * bw + x]);
          col_sum += alpha[(size_t) y * bw + x];
        }
      width += col_max;
      col_sq += col_sum * col_sum;
    }
  if (area <= 0 || width <= 0 || height <= 0)
    {
      o->shape = -1, o->colour = colour, o->size = TF_SHAPE_SMALL, o->cell = 0;
      return;
    }
  mx /= area, my /= area, row_mid /= height;

  double cell_width = size / 3.0;
  int col = CLAMP ((int) (mx / cell_width), 0, 2);
  int row = CLAMP ((int) (my / cell_width), 0, 2);
  o->cell = row * 3 + col;
  o->dx = (float) (mx / cell_width - (col + 0.5));
  o->dy = (float) (my / cell_width - (row + 0.5));
  o->colour = colour;
  /* Large objects span 0.8 of a cell, small ones 0.5. */
  double extent = MAX (width, height);
  o->size = extent > 0.65 * cell_width ? TF_SHAPE_LARGE : TF_SHAPE_SMALL;

  ShapeFeatures f = {
    .fill = area / (width * height),
    .balance = (my - row_mid) / height,
    /* Column masses: flat for a square, peaked for a cross. */
    .spread = col_sq * width / (area * area),
  };
  o->shape = classify_shape (&f, extent);
}

void
tf_shapes_analyse (const float *pixels, int size, int channels, TfShapeScene *found)
{
  g_return_if_fail (pixels != NULL && found != NULL);
  memset (found, 0, sizeof *found);
  g_return_if_fail (size > 0 && (channels == 1 || channels == 3));

  size_t n = (size_t) size * size;
  g_autofree guint8 *ink = g_new0 (guint8, n);
  for (size_t i = 0; i < n; i++)
    {
      double darkest = 0;
      for (int k = 0; k < channels; k++)
        darkest = MAX (darkest, (1.0 - pixels[i * channels + k]) / 2);
      ink[i] = darkest > INK_THRESHOLD;
    }

  /* Connected components (8-neighbours) by breadth-first flood fill; each
   * blob's pixels end up side by side in the queue. */
  g_autofree int *label = g_new (int, n);
  g_autofree int *queue = g_new (int, n);
  for (size_t i = 0; i < n; i++)
    label[i] = -1;
  double min_pixels = MIN_BLOB_PIXELS_32 * (size / 32.0) * (size / 32.0);
  g_autoptr (GArray) objects = g_array_new (FALSE, TRUE, sizeof (TfShapeObject));
  int n_blobs = 0, end = 0;
  for (size_t seed = 0; seed < n; seed++)
    {
      if (!ink[seed] || label[seed] >= 0)
        continue;
      int start = end, head = end;
      queue[end++] = (int) seed;
      label[seed] = n_blobs;
      while (head < end)
        {
          int p = queue[head++];
          int x = p % size, y = p / size;
          for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++)
              {
                int qx = x + dx, qy = y + dy;
                if (qx < 0 || qy < 0 || qx >= size || qy >= size)
                  continue;
                int q = qy * size + qx;
                if (ink[q] && label[q] < 0)
                  {
                    label[q] = n_blobs;
                    queue[end++] = q;
                  }
              }
        }
      Blob blob = { n_blobs, end - start, queue + start, label };
      n_blobs++;
      if (blob.n_pixels < min_pixels)
        continue;
      TfShapeObject o = { 0 };
      analyse_blob (pixels, size, channels, &blob, &o);
      g_array_append_val (objects, o);
    }

  g_array_sort (objects, compare_objects);
  found->n = MIN ((int) objects->len, TF_SHAPES_N_CELLS);
  for (int i = 0; i < found->n; i++)
    found->objects[i] = g_array_index (objects, TfShapeObject, i);
}

/* --- the data source --------------------------------------------------- */

static gboolean
shapes_get (TfDataSource *source, int64_t index, TfRng *rng, TfExample *example, GError **error)
{
  TfShapeScene scene;
  tf_shapes_scene_for_index (source->split, index, &scene);
  example->kind = TF_EXAMPLE_IMAGE;
  example->size = source->image_size;
  example->channels = source->channels;
  example->pixels = g_new (float, (size_t) source->image_size * source->image_size * source->channels);
  tf_shapes_render (&scene, source->image_size, source->channels, example->pixels);
  example->caption = tf_shapes_caption (&scene, rng);
  example->subject = g_strdup_printf ("%s %s", colours[scene.objects[0].colour].name,
                                      shape_names[scene.objects[0].shape]);
  example->label = -1;
  return TRUE;
}

static const TfDataSourceClass shapes_class = {
  .get = shapes_get,
  .finalize = NULL,
};

TfDataSource *
tf_data_shapes_new (TfSplit split, int image_size, int channels, GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (image_size < 8 || image_size > 4096 || (channels != 1 && channels != 3))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "shapes: image size %d with %d channels, expected 8 to 4096 pixels and 1 or 3 "
                   "channels", image_size, channels);
      return NULL;
    }

  TfDataSource *source = tf_data_source_alloc (&shapes_class, sizeof (TfDataSource), "shapes",
                                               split, image_size, channels);
  source->size = split == TF_SPLIT_TRAIN ? TRAIN_SIZE : HELDOUT_SIZE;

  GPtrArray *subjects = g_ptr_array_new ();
  for (int s = 0; s < TF_SHAPES_N_SHAPES; s++)
    g_ptr_array_add (subjects, g_strdup (shape_names[s]));
  for (int c = 0; c < TF_SHAPES_N_COLOURS; c++)
    g_ptr_array_add (subjects, g_strdup (colours[c].name));
  for (int c = 0; c < TF_SHAPES_N_COLOURS; c++)
    for (int s = 0; s < TF_SHAPES_N_SHAPES; s++)
      g_ptr_array_add (subjects, g_strdup_printf ("%s %s", colours[c].name, shape_names[s]));
  for (int cell = 0; cell < TF_SHAPES_N_CELLS; cell++)
    g_ptr_array_add (subjects, g_strdup (cell_phrases[cell]));
  g_ptr_array_add (subjects, NULL);
  source->subjects = (char **) g_ptr_array_free (subjects, FALSE);
  return source;
}
