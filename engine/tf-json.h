/* tf-json.h: the one way the engine turns a JsonBuilder into text. */
#pragma once

#include <json-glib/json-glib.h>
#include <string.h>

/* Compact JSON of @node.
 *
 * Two faults of json-glib 1.6 are mended on the way:
 * - a double such as 1e-08 comes out as "1e-08.0", which is not JSON
 *   (Python's json module, among others, refuses it): outside strings, a
 *   ".0" right after an exponent is dropped;
 * - the control character U+001F is written raw inside a string (every
 *   other one is escaped), which no JSON parser accepts: it becomes \u001f.
 *   A model's generated text can hold any byte, so reports and saved
 *   conversations would otherwise not read back. */
static inline char *
tf_json_node_to_string (JsonNode *node)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, node);
  g_autofree char *text = json_generator_to_data (gen, NULL);

  GString *out = g_string_sized_new (strlen (text) + 16);
  gboolean in_string = FALSE, escaped = FALSE, in_exponent = FALSE;
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
          else if ((unsigned char) ch < 0x20)
            {
              g_string_append_printf (out, "\\u%04x", (unsigned) (unsigned char) ch);
              continue;
            }
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
      g_string_append_c (out, ch);
    }
  return g_string_free (out, FALSE);
}

/* Compact JSON of what @builder built (its root must be complete), mended
 * as tf_json_node_to_string() says. */
static inline char *
tf_json_builder_to_string (JsonBuilder *builder)
{
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  return tf_json_node_to_string (root);
}

/* The length of the first JSON value in @data (@len bytes) with the white
 * space around it, or @len when that value does not end (the parser then
 * says what is wrong with it). */
static inline gsize
tf_json_first_value_end (const char *data, gsize len)
{
  gsize i = 0;
#define TF_JSON_SPACE(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')
  while (i < len && TF_JSON_SPACE (data[i]))
    i++;
  if (i < len && (data[i] == '{' || data[i] == '[' || data[i] == '"'))
    {
      /* a container or a string: to its matching end, strings skipped */
      gsize depth = 0;
      gboolean in_string = FALSE, escaped = FALSE;
      for (; i < len; i++)
        {
          const char c = data[i];
          if (in_string)
            {
              if (escaped)
                escaped = FALSE;
              else if (c == '\\')
                escaped = TRUE;
              else if (c == '"')
                in_string = FALSE;
            }
          else if (c == '"')
            in_string = TRUE;
          else if (c == '{' || c == '[')
            depth++;
          else if ((c == '}' || c == ']') && depth > 0)
            depth--;
          if (!in_string && depth == 0)
            {
              i++;
              break;
            }
        }
    }
  else
    /* a number or a literal */
    while (i < len && (g_ascii_isalnum (data[i]) || data[i] == '.' || data[i] == '+' ||
                       data[i] == '-'))
      i++;
  while (i < len && TF_JSON_SPACE (data[i]))
    i++;
#undef TF_JSON_SPACE
  return i;
}

/* json_parser_load_from_data() for text from elsewhere: json-glib 1.6
 * accepts text after the first value ("{}{}" loads as "{}", and leaks what
 * it built of the rest), so anything after the first value is refused
 * first. */
static inline gboolean
tf_json_parse (JsonParser *parser, const char *data, gssize len, GError **error)
{
  const gsize n = len < 0 ? strlen (data) : (gsize) len;
  const gsize end = tf_json_first_value_end (data, n);
  if (end < n)
    {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
                   "unexpected text after the JSON value, at byte %" G_GSIZE_FORMAT, end);
      return FALSE;
    }
  return json_parser_load_from_data (parser, data, (gssize) n, error);
}
