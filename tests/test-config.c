/* test-config.c: presets, validation and the JSON stored in checkpoints. */
#include "tf-config.h"

#include <string.h>

static TfConfig
valid_config (void)
{
  TfConfig c;
  g_assert_true (tf_config_preset (&c, "default", NULL));
  c.vocab_size = 4096;
  c.bos_id = 4089; c.eos_id = 4090; c.boi_id = 4091; c.eoi_id = 4092;
  c.pad_id = 4093; c.user_id = 4094; c.assistant_id = 4095;
  return c;
}

static void
test_presets (void)
{
  const char *names[] = { "tiny", "small", "default" };
  int last_d = 0;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      TfConfig c;
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_config_preset (&c, names[i], &error));
      g_assert_no_error (error);
      g_assert_cmpint (c.d_model, >, last_d);
      last_d = c.d_model;
      g_assert_cmpint (c.mlp_hidden, ==, tf_config_default_mlp_hidden (c.d_model));
      g_assert_cmpstr (c.schedule, ==, "cosine");
      g_assert_cmpint (c.diffusion_steps, ==, 1000);
    }
  TfConfig c = valid_config ();
  /* SPEC §2 default: 32×32 RGB, patch 4 → 64 patches of 48 values, d 256. */
  g_assert_cmpint (tf_config_n_patches (&c), ==, 64);
  g_assert_cmpint (tf_config_patch_dim (&c), ==, 48);
  g_assert_cmpint (c.mlp_hidden, ==, 704);   /* round_up(8/3 · 256, 32) */
  g_assert_true (tf_config_validate (&c, "default", NULL));

  g_autoptr (GError) error = NULL;
  g_assert_false (tf_config_preset (&c, "huge", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
}

static void
test_json_round_trip (void)
{
  TfConfig c = valid_config (), back;
  g_autofree char *json = tf_config_to_json (&c);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_from_json (&back, json, "test", &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&c, sizeof c, &back, sizeof back);
}

/* json-glib writes 1e-08 as "1e-08.0"; what we store must be real JSON. */
static void
test_json_exponents (void)
{
  TfConfig c = valid_config (), back;
  c.norm_eps = 1e-8;
  c.rope_theta = 1e6;
  g_autofree char *json = tf_config_to_json (&c);
  g_test_message ("%s", json);
  g_assert_null (strstr (json, "e-08.0"));
  g_assert_nonnull (strstr (json, "\"norm_eps\":1e-08"));
  g_assert_true (tf_config_from_json (&back, json, "test", NULL));
  g_assert_cmpfloat (back.norm_eps, ==, 1e-8);
  g_assert_cmpfloat (back.rope_theta, ==, 1e6);
}

static void
expect_json_error (const char *json, const char *fragment)
{
  TfConfig c;
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_config_from_json (&c, json, "model.safetensors", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  if (strstr (error->message, fragment) == NULL || strstr (error->message, "model.safetensors") == NULL)
    g_error ("message '%s' does not name the file and '%s'", error->message, fragment);
}

static char *
replace (const char *json, const char *from, const char *to)
{
  g_autoptr (GString) s = g_string_new (json);
  g_assert_cmpint (g_string_replace (s, from, to, 1), ==, 1);
  return g_strdup (s->str);
}

static void
test_json_errors (void)
{
  TfConfig c = valid_config ();
  g_autofree char *json = tf_config_to_json (&c);
  const struct { const char *from, *to, *fragment; } cases[] = {
    { "\"d_model\":256", "\"d_model\":\"256\"", "'d_model' is not an integer" },
    { "\"d_model\":256,", "", "'d_model' is missing" },
    { "\"d_model\":256", "\"d_model\":255", "must split into 8 heads" },
    { "\"n_layers\":8", "\"n_layers\":0", "'n_layers' is 0, expected 1 to 256" },
    { "\"vocab_size\":4096", "\"vocab_size\":99999999999", "'vocab_size' is out of range" },
    { "\"image_size\":32", "\"image_size\":30", "not a multiple of patch_size" },
    { "\"schedule\":\"cosine\"", "\"schedule\":\"linear\"", "expected 'cosine'" },
    { "\"eos_id\":4090", "\"eos_id\":4089", "'bos_id' and 'eos_id' are both 4089" },
    { "\"pad_id\":4093", "\"pad_id\":4096", "'pad_id' is 4096" },
    { "\"max_seq_len\":256", "\"max_seq_len\":40", "more than max_seq_len 40" },
    { "\"norm_eps\":", "\"norm_eps\":-1,\"x\":", "'norm_eps'" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *bad = replace (json, cases[i].from, cases[i].to);
      expect_json_error (bad, cases[i].fragment);
    }
  expect_json_error ("[1,2]", "not a JSON object");
  expect_json_error ("{\"d_model\":", "not valid JSON");
  expect_json_error ("", "not a JSON object");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/presets", test_presets);
  g_test_add_func ("/config/json-round-trip", test_json_round_trip);
  g_test_add_func ("/config/json-exponents", test_json_exponents);
  g_test_add_func ("/config/json-errors", test_json_errors);
  return g_test_run ();
}
