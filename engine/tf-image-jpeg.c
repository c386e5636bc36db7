/* tf-image-jpeg.c: JPEG files (libjpeg-turbo), the format of people's photos.
 *
 * Decodes from memory, as the PNG reader does, into 8-bit RGBA (opaque),
 * turned upright by the EXIF orientation a camera writes. Greyscale, YCbCr,
 * RGB and (Adobe's inverted) CMYK files are read; a truncated file is an
 * error, not a picture half grey. libjpeg reports errors by longjmp: the
 * only allocation that can outlive a jump is the pixel buffer, which is
 * volatile and freed on the error path. */
#include "tf-image-private.h"
#include "tf-config.h"

#include <setjmp.h>
#include <stdio.h>   /* before jpeglib.h, which uses FILE */
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
  struct jpeg_error_mgr parent;
  jmp_buf               jump;
  char                  message[JMSG_LENGTH_MAX];
} JpegErrors;

static void
jpeg_fail (j_common_ptr cinfo)
{
  JpegErrors *e = (JpegErrors *) cinfo->err;
  cinfo->err->format_message (cinfo, e->message);
  longjmp (e->jump, 1);
}

/* Warnings: the end of the data before the end of the image is an error
 * (libjpeg would fill the rest with grey); others, such as stray bytes
 * between markers, are what every viewer shows past. */
static void
jpeg_warn (j_common_ptr cinfo, int level)
{
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF)
    jpeg_fail (cinfo);
}

static guint16
exif_u16 (const uint8_t *p, gboolean little)
{
  return little ? (guint16) (p[0] | p[1] << 8) : (guint16) (p[0] << 8 | p[1]);
}

static guint32
exif_u32 (const uint8_t *p, gboolean little)
{
  return little ? (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24
                : (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | (guint32) p[3];
}

int
tf_image_exif_orientation (const uint8_t *data, size_t len)
{
  /* "Exif\0\0", then a TIFF header: byte order, 42, the offset of IFD0. */
  if (len < 14 || memcmp (data, "Exif\0\0", 6) != 0)
    return 1;
  const uint8_t *tiff = data + 6;
  const size_t n = len - 6;
  gboolean little;
  if (memcmp (tiff, "II", 2) == 0)
    little = TRUE;
  else if (memcmp (tiff, "MM", 2) == 0)
    little = FALSE;
  else
    return 1;
  if (exif_u16 (tiff + 2, little) != 42)
    return 1;
  const guint32 ifd = exif_u32 (tiff + 4, little);
  if (ifd > n - 2 || ifd < 8)
    return 1;
  const guint16 entries = exif_u16 (tiff + ifd, little);
  for (guint32 i = 0; i < entries; i++)
    {
      const size_t at = ifd + 2 + (size_t) i * 12;
      if (at + 12 > n)
        break;
      /* tag 0x0112, type SHORT (3), count 1: the value in the entry itself */
      if (exif_u16 (tiff + at, little) == 0x0112 && exif_u16 (tiff + at + 2, little) == 3)
        {
          const guint16 v = exif_u16 (tiff + at + 8, little);
          return v >= 1 && v <= 8 ? v : 1;
        }
    }
  return 1;
}

gboolean
tf_image_orient (TfImage *image, int orientation)
{
  if (orientation <= 1 || orientation > 8)
    return TRUE;
  const int w = image->width, h = image->height;
  const gboolean swap = orientation >= 5;   /* 5–8 turn a quarter */
  const int ow = swap ? h : w, oh = swap ? w : h;
  uint32_t *out = g_try_new (uint32_t, (size_t) w * h);
  if (out == NULL)
    return FALSE;
  const uint32_t *in = (const uint32_t *) (void *) image->rgba;
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++)
      {
        /* Where the output pixel (x, y) comes from in the stored image. */
        int sx, sy;
        switch (orientation)
          {
          case 2: sx = w - 1 - x; sy = y; break;                 /* mirrored */
          case 3: sx = w - 1 - x; sy = h - 1 - y; break;         /* upside down */
          case 4: sx = x; sy = h - 1 - y; break;                 /* mirrored, upside down */
          case 5: sx = y; sy = x; break;                         /* transposed */
          case 6: sx = y; sy = h - 1 - x; break;                 /* to turn clockwise */
          case 7: sx = w - 1 - y; sy = h - 1 - x; break;         /* transversed */
          default: sx = w - 1 - y; sy = x; break;                /* 8: counter-clockwise */
          }
        out[(size_t) y * ow + x] = in[(size_t) sy * w + sx];
      }
  g_free (image->rgba);
  image->rgba = (uint8_t *) out;
  image->width = ow;
  image->height = oh;
  return TRUE;
}

gboolean
tf_image_read_jpeg_bytes (const void *data, size_t len, const char *shown, TfImage *image,
                          GError **error)
{
  struct jpeg_decompress_struct cinfo;
  JpegErrors errors;
  uint8_t *volatile pixels = NULL;
  uint8_t *volatile row = NULL;
  volatile int orientation = 1;

  memset (image, 0, sizeof *image);
  cinfo.err = jpeg_std_error (&errors.parent);
  errors.parent.error_exit = jpeg_fail;
  errors.parent.emit_message = jpeg_warn;
  errors.message[0] = '\0';
  if (setjmp (errors.jump))
    {
      jpeg_destroy_decompress (&cinfo);
      g_free (pixels);
      g_free (row);
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: not a readable JPEG image: %s", shown,
                   errors.message);
      return FALSE;
    }
  jpeg_create_decompress (&cinfo);
  jpeg_mem_src (&cinfo, (const unsigned char *) data, (unsigned long) len);
  jpeg_save_markers (&cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header (&cinfo, TRUE);
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != NULL; m = m->next)
    if (m->marker == JPEG_APP0 + 1)
      {
        orientation = tf_image_exif_orientation (m->data, m->data_length);
        break;
      }

  const gboolean cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  if ((guint64) cinfo.image_width * cinfo.image_height > TF_IMAGE_MAX_PIXELS)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: image is %u×%u pixels, more than the limit of %u", shown,
                   cinfo.image_width, cinfo.image_height, TF_IMAGE_MAX_PIXELS);
      jpeg_destroy_decompress (&cinfo);
      return FALSE;
    }
  jpeg_start_decompress (&cinfo);
  const size_t w = cinfo.output_width, h = cinfo.output_height;
  const int comps = cinfo.output_components;   /* 3, or 4 for CMYK */
  pixels = g_try_malloc (w * h * 4);
  row = g_try_malloc (w * (size_t) comps);
  if (pixels == NULL || row == NULL)
    {
      g_snprintf (errors.message, sizeof errors.message, "%zu × %zu pixels do not fit in memory",
                  w, h);
      longjmp (errors.jump, 1);
    }
  while (cinfo.output_scanline < h)
    {
      const size_t y = cinfo.output_scanline;
      JSAMPROW rows[1] = { row };
      jpeg_read_scanlines (&cinfo, rows, 1);
      uint8_t *out = pixels + y * w * 4;
      for (size_t x = 0; x < w; x++)
        {
          const uint8_t *p = row + x * (size_t) comps;
          if (comps == 4)
            {
              /* Adobe writes CMYK inverted: p holds 255 − C and so on, so
               * that R = (255 − C)(255 − K) / 255 is p[0]·p[3] / 255. */
              for (int c = 0; c < 3; c++)
                out[x * 4 + c] = (uint8_t) ((p[c] * p[3] + 127) / 255);
            }
          else
            memcpy (out + x * 4, p, 3);
          out[x * 4 + 3] = 255;
        }
    }
  jpeg_finish_decompress (&cinfo);
  jpeg_destroy_decompress (&cinfo);
  g_free (row);

  image->width = (int) w;
  image->height = (int) h;
  image->rgba = pixels;
  if (!tf_image_orient (image, orientation))
    {
      tf_image_clear (image);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: %zu × %zu pixels do not fit in memory",
                   shown, w, h);
      return FALSE;
    }
  return TRUE;
}
