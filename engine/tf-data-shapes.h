/* tf-data-shapes.h: the scenes behind tf_data_shapes_new(), and reading
 * them back from pixels (SPEC §5).
 *
 * A scene is 1–3 objects on a white background, each in its own cell of a
 * 3×3 grid, so objects never overlap. The scene of example i is fixed by i
 * (a generator seeded from it); only the caption's phrasing comes from the
 * caller's rng. The train split uses seeds [0, 2^40) and the held-out split
 * the seeds from 2^40 on, so the two never share a seed. (A scene drawn from
 * a held-out seed can still equal one drawn from a train seed, most often
 * with one object: there are only 6 × 8 × 2 × 9 = 864 single-object scenes,
 * up to the small objects' jitter.)
 *
 * tf_shapes_analyse() is what evaluation uses on generated images: it finds
 * the objects in the pixels and reads back their colour, cell, size and
 * (best effort) shape. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "tf-data.h"

G_BEGIN_DECLS

typedef enum {
  TF_SHAPE_CIRCLE,
  TF_SHAPE_SQUARE,
  TF_SHAPE_TRIANGLE,
  TF_SHAPE_STAR,
  TF_SHAPE_HEART,
  TF_SHAPE_CROSS,
  TF_SHAPES_N_SHAPES
} TfShape;

typedef enum {
  TF_SHAPE_RED,
  TF_SHAPE_ORANGE,
  TF_SHAPE_YELLOW,
  TF_SHAPE_GREEN,
  TF_SHAPE_BLUE,
  TF_SHAPE_PURPLE,
  TF_SHAPE_PINK,
  TF_SHAPE_BLACK,
  TF_SHAPES_N_COLOURS
} TfShapeColour;

typedef enum {
  TF_SHAPE_SMALL,
  TF_SHAPE_LARGE,
  TF_SHAPES_N_SIZES
} TfShapeSize;

/* Cells are numbered row by row: 0 top left, 1 top, 2 top right, 3 left,
 * 4 centre, 5 right, 6 bottom left, 7 bottom, 8 bottom right. */
#define TF_SHAPES_N_CELLS 9
/* Objects per generated scene. */
#define TF_SHAPES_MAX_OBJECTS 3

typedef struct {
  int   shape;     /* TfShape, or -1 when the analysis cannot tell */
  int   colour;    /* TfShapeColour, or -1 (no colour in 1-channel pixels) */
  int   size;      /* TfShapeSize */
  int   cell;      /* 0 … 8 */
  /* Offset of the object's centre from its cell's centre, in cell widths
   * (only small objects move; generation fills it, the analysis measures it). */
  float dx, dy;
} TfShapeObject;

typedef struct {
  int n;           /* generated: 1 … 3; found: 0 … 9 */
  TfShapeObject objects[TF_SHAPES_N_CELLS];
} TfShapeScene;

/* The scene of example @index in @split (train: 0 ≤ index < 2^40). */
void tf_shapes_scene_for_index (TfSplit split, int64_t index, TfShapeScene *scene);

/* Draws @scene into @pixels (size × size × channels, in [-1, 1]). */
void tf_shapes_render (const TfShapeScene *scene, int size, int channels, float *pixels);

/* A caption of @scene ("a small red circle at the top left and ..."); the
 * phrasing is drawn from @rng. */
char *tf_shapes_caption (const TfShapeScene *scene, TfRng *rng);

/* Finds the objects in @pixels: @found gets one entry per blob that differs
 * from the white background, in reading order of its cell, with colour (the
 * nearest palette colour of its solid pixels; -1 when @channels is 1), cell
 * (from its centroid), size and shape (from the fill of its bounding box and
 * its vertical balance; -1 when the blob is too small to tell). */
void tf_shapes_analyse (const float *pixels, int size, int channels, TfShapeScene *found);

const char *tf_shapes_shape_name (int shape);    /* "circle", "?" for -1 */
const char *tf_shapes_colour_name (int colour);  /* "red" */
const char *tf_shapes_size_name (int size);      /* "small" */
/* The canonical phrase of a cell: "at the top left", "on the right", "in
 * the centre"; the emoji source names its positions with it too. */
const char *tf_shapes_cell_phrase (int cell);

G_END_DECLS
