/* tf-json.h: the one way the engine turns a JsonBuilder into text. */
#pragma once

#include <json-glib/json-glib.h>

/* Compact JSON of what @builder built (its root must be complete). */
static inline char *
tf_json_builder_to_string (JsonBuilder *builder)
{
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}
