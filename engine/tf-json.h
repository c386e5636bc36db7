/* tf-json.h: the one way the engine turns a JsonBuilder into text. */
#pragma once

#include <json-glib/json-glib.h>

/* Compact JSON of what @builder built (its root must be complete).
 *
 * json-glib 1.6 writes a double such as 1e-08 as "1e-08.0", which is not
 * JSON (Python's json module, among others, refuses it): outside strings, a
 * ".0" right after an exponent is dropped. */
static inline char *
tf_json_builder_to_string (JsonBuilder *builder)
{
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  char *text = json_generator_to_data (gen, NULL);

  gboolean in_string = FALSE, escaped = FALSE, in_exponent = FALSE;
  char *w = text;
  for (const char *r = text; *r != '\0'; r++)
    {
      const char ch = *r;
      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (ch == '\\')
            escaped = TRUE;
          else if (ch == '"')
            in_string = FALSE;
        }
      else if (ch == '"')
        {
          in_string = TRUE;
          in_exponent = FALSE;
        }
      else if ((ch == 'e' || ch == 'E') && r > text && g_ascii_isdigit (r[-1]))
        in_exponent = TRUE;
      else if (in_exponent && ch == '.' && r[1] == '0' && !g_ascii_isdigit (r[2]))
        {
          r++;             /* skip ".0" */
          in_exponent = FALSE;
          continue;
        }
      else if (!g_ascii_isdigit (ch) && ch != '-' && ch != '+')
        in_exponent = FALSE;
      *w++ = ch;
    }
  *w = '\0';
  return text;
}
