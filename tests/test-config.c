/* test-config.c: presets, validation and the JSON stored in checkpoints. */
#include "tf-config.h"
#include "tf-diffusion.h"
#include "tf-safetensors.h"
#include "tf-json.h"

#include <math.h>
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
  const char *names[] = { "tiny", "small", "default", "large" };
  int last_size = 0;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      TfConfig c;
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_config_preset (&c, names[i], &error));
      g_assert_no_error (error);
      /* each larger than the one before (d² per layer) */
      g_assert_cmpint (c.d_model * c.d_model * c.n_layers, >, last_size);
      last_size = c.d_model * c.d_model * c.n_layers;
      g_assert_cmpstr (tf_config_preset_of (&c), ==, names[i]);
      g_assert_cmpint (c.mlp_hidden, ==, tf_config_default_mlp_hidden (c.d_model));
      g_assert_cmpstr (c.schedule, ==, "cosine");
      g_assert_cmpint (c.diffusion_steps, ==, 1000);
      /* A new model trains with the ablation's recipe (issue 14). */
      g_assert_cmpint (c.prediction, ==, TF_PREDICTION_V);
      g_assert_cmpint (c.t_sampling, ==, TF_T_SAMPLING_LOGIT_NORMAL);
      g_assert_cmpfloat (c.t_mean, ==, 0.0);
      g_assert_cmpfloat (c.t_scale, ==, 1.0);
      g_assert_cmpint (c.time_conditioning, ==, TF_TIME_ADD);
      g_assert_cmpint (c.image_encoder, ==, TF_IMAGE_ENCODER_LINEAR);
      g_assert_cmpint (c.image_rope, ==, TF_IMAGE_ROPE_1D);
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

/* json-glib 1.6 writes U+001F raw inside a string (no parser accepts that);
 * a model's generated text can hold it. Every control character must come
 * out escaped and read back as it was, beside the exponent mend. */
static void
test_json_control_characters (void)
{
  char text[128];
  for (int i = 1; i < 128; i++)
    text[i - 1] = (char) i;
  text[127] = '\0';
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, text);
  json_builder_set_member_name (b, "eps");
  json_builder_add_double_value (b, 1e-8);
  json_builder_end_object (b);
  g_autofree char *json = tf_json_builder_to_string (b);
  g_test_message ("%s", json);
  for (const char *p = json; *p != '\0'; p++)
    g_assert_cmpint ((unsigned char) *p, >=, 0x20);
  g_assert_nonnull (strstr (json, "\\u001f"));
  g_assert_nonnull (strstr (json, "\"eps\":1e-08}"));
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_json_parse (parser, json, -1, &error));
  g_assert_no_error (error);
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "text"), ==, text);
  g_assert_cmpfloat (json_object_get_double_member (o, "eps"), ==, 1e-8);
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

/* `json`, written from `c`, reads back as `c` bit for bit; with `member`
 * (its `,"field":value` text) cut out, `field` is named nowhere and the
 * rest still reads, into `back`.  Returns the JSON without the member. */
static char *
assert_reads_without (const TfConfig *c, const char *json, const char *field,
                      const char *member, TfConfig *back)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_from_json (back, json, "test", &error));
  g_assert_no_error (error);
  g_assert_cmpmem (c, sizeof *c, back, sizeof *back);

  char *without = replace (json, member, "");
  g_assert_null (strstr (without, field));
  g_assert_true (tf_config_from_json (back, without, "test", &error));
  g_assert_no_error (error);
  return without;
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

/* The image side's recipe (issue 14): every field round-trips, and a config
 * at the values of files made before it writes none of them. */
static void
test_recipe_json (void)
{
  TfConfig c = valid_config (), back;
  /* The presets' recipe is not the old files' one: it is written. */
  g_autofree char *preset = tf_config_to_json (&c);
  g_assert_nonnull (strstr (preset, "\"prediction\":\"v\",\"t_sampling\":\"logit_normal\""));
  c.prediction = TF_PREDICTION_EPS;
  c.t_sampling = TF_T_SAMPLING_UNIFORM;
  g_autofree char *plain = tf_config_to_json (&c);
  g_assert_null (strstr (plain, "prediction"));
  g_assert_null (strstr (plain, "t_sampling"));
  g_assert_null (strstr (plain, "min_snr_gamma"));
  g_assert_null (strstr (plain, "time_conditioning"));
  g_assert_null (strstr (plain, "image_encoder"));
  g_assert_null (strstr (plain, "unet_"));
  g_assert_null (strstr (plain, "conv_"));
  g_assert_null (strstr (plain, "image_rope"));

  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_apply_recipe (&c, "prediction=v,t_sampling=logit_normal,t_mean=-0.5,"
                                         "t_scale=1.5,min_snr_gamma=5,time_conditioning=adaln_zero,"
                                         "image_encoder=unet,unet_channels=16,unet_blocks=2",
                                         &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.prediction, ==, TF_PREDICTION_V);
  g_assert_cmpint (c.t_sampling, ==, TF_T_SAMPLING_LOGIT_NORMAL);
  g_assert_cmpfloat (c.t_mean, ==, -0.5);
  g_assert_cmpfloat (c.t_scale, ==, 1.5);
  g_assert_cmpfloat (c.min_snr_gamma, ==, 5.0);
  g_assert_cmpint (c.time_conditioning, ==, TF_TIME_ADALN_ZERO);
  g_assert_cmpint (c.image_encoder, ==, TF_IMAGE_ENCODER_UNET);
  g_assert_cmpint (c.unet_channels, ==, 16);
  g_assert_cmpint (c.unet_blocks, ==, 2);
  g_assert_true (c.unet_skips);
  g_autofree char *json = tf_config_to_json (&c);
  g_assert_nonnull (strstr (json, "\"image_encoder\":\"unet\",\"unet_channels\":16,\"unet_blocks\":2"));
  g_assert_null (strstr (json, "unet_skips"));   /* with skips: as files before the field */
  g_assert_null (strstr (json, "conv_channels"));   /* the conv encoder's field: not this one's */
  g_test_message ("%s", json);
  g_assert_true (tf_config_from_json (&back, json, "test", &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&c, sizeof c, &back, sizeof back);

  /* without skips: written, read back, named when it is not a boolean */
  g_assert_true (tf_config_apply_recipe (&c, "unet_skips=false", &error));
  g_assert_no_error (error);
  g_assert_false (c.unet_skips);
  g_autofree char *json_noskip = tf_config_to_json (&c);
  g_assert_nonnull (strstr (json_noskip, "\"unet_blocks\":2,\"unet_skips\":false"));
  g_assert_true (tf_config_from_json (&back, json_noskip, "test", &error));
  g_assert_no_error (error);
  g_assert_cmpmem (&c, sizeof c, &back, sizeof back);
  g_assert_false (tf_config_apply_recipe (&c, "unet_skips=no", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "'unet_skips' is 'no', expected true or false"));
  g_clear_error (&error);
  g_assert_true (tf_config_apply_recipe (&c, "unet_skips=true", &error));
  g_assert_true (c.unet_skips);

  c.prediction = TF_PREDICTION_X;
  g_autofree char *json_x = tf_config_to_json (&c);
  g_assert_nonnull (strstr (json_x, "\"prediction\":\"x\""));
}

/* The conv encoder (linear patches between 3×3 convolutions): its channels
 * are written with it only, read back, and a file without them has 16. */
static void
test_recipe_conv (void)
{
  TfConfig c = valid_config (), back;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (c.conv_channels, ==, 16);
  g_assert_true (tf_config_apply_recipe (&c, "prediction=v,image_encoder=conv,conv_channels=8",
                                         &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.image_encoder, ==, TF_IMAGE_ENCODER_CONV);
  g_assert_cmpint (c.conv_channels, ==, 8);
  g_assert_true (tf_config_validate (&c, "test", &error));
  g_assert_no_error (error);
  g_autofree char *json = tf_config_to_json (&c);
  g_test_message ("%s", json);
  g_assert_nonnull (strstr (json, "\"image_encoder\":\"conv\",\"conv_channels\":8"));
  g_assert_null (strstr (json, "unet_"));

  /* without the field: the default */
  g_autofree char *without = assert_reads_without (&c, json, "conv_channels",
                                                   ",\"conv_channels\":8", &back);
  g_assert_cmpint (back.image_encoder, ==, TF_IMAGE_ENCODER_CONV);
  g_assert_cmpint (back.conv_channels, ==, 16);

  /* out of range: named by validation, as the recipe gives it */
  g_assert_true (tf_config_apply_recipe (&c, "conv_channels=5000", &error));
  g_assert_no_error (error);
  g_assert_false (tf_config_validate (&c, "--recipe", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message,
                            "--recipe: config field 'conv_channels' is 5000, expected 1 to 4096"));
  g_clear_error (&error);
  g_assert_false (tf_config_apply_recipe (&c, "conv_channels=-3", &error));
  g_assert_nonnull (strstr (error->message, "'conv_channels' is '-3', expected a whole number"));
  g_clear_error (&error);

  /* another encoder does not read the field, so any value will do there */
  c = valid_config ();
  c.conv_channels = 0;
  g_assert_true (tf_config_validate (&c, "test", &error));
  g_assert_no_error (error);
}

/* Axial RoPE for patches: written only when chosen, read back; a config
 * without the field is 1-D RoPE, as every file before it; a value out of
 * the enum is refused. */
static void
test_recipe_image_rope (void)
{
  TfConfig c = valid_config (), back;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (c.image_rope, ==, TF_IMAGE_ROPE_1D);
  g_assert_true (tf_config_apply_recipe (&c, "image_rope=axial", &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.image_rope, ==, TF_IMAGE_ROPE_AXIAL);
  g_assert_cmpstr (tf_image_rope_name (c.image_rope), ==, "axial");
  g_autofree char *json = tf_config_to_json (&c);
  g_assert_nonnull (strstr (json, "\"image_rope\":\"axial\""));

  g_autofree char *without = assert_reads_without (&c, json, "image_rope",
                                                   ",\"image_rope\":\"axial\"", &back);
  g_assert_cmpint (back.image_rope, ==, TF_IMAGE_ROPE_1D);
  g_autofree char *again = tf_config_to_json (&back);
  g_assert_cmpstr (again, ==, without);

  g_assert_true (tf_config_apply_recipe (&c, "image_rope=1d", &error));
  g_assert_cmpint (c.image_rope, ==, TF_IMAGE_ROPE_1D);
  c.image_rope = (TfImageRope) 2;
  g_assert_false (tf_config_validate (&c, "test", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "'image_rope' is not a known value"));
}

/* A file written before the recipe existed (the golden tiny model, committed
 * before it; the bundled model was one too until the campaign's replaced
 * it) reads with the recipe it was trained with, and writes its config back
 * without any recipe field, as it was. */
static void
test_recipe_old_file (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "golden", "tiny-model.safetensors",
                                                 NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  const char *stored = tf_safetensors_metadata (st, "config");
  g_assert_nonnull (stored);
  g_assert_null (strstr (stored, "prediction"));
  TfConfig c;
  g_assert_true (tf_config_from_json (&c, stored, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.prediction, ==, TF_PREDICTION_EPS);
  g_assert_cmpint (c.t_sampling, ==, TF_T_SAMPLING_UNIFORM);
  g_assert_cmpfloat (c.min_snr_gamma, ==, 0.0);
  g_assert_cmpint (c.time_conditioning, ==, TF_TIME_ADD);
  g_assert_cmpint (c.image_encoder, ==, TF_IMAGE_ENCODER_LINEAR);
  g_assert_cmpint (c.image_rope, ==, TF_IMAGE_ROPE_1D);
  g_autofree char *again = tf_config_to_json (&c);
  const char *recipe_fields[] = { "prediction", "t_sampling", "t_mean", "t_scale", "min_snr",
                                  "time_conditioning", "image_encoder", "unet_", "conv_",
                                  "image_rope" };
  for (guint i = 0; i < G_N_ELEMENTS (recipe_fields); i++)
    g_assert_null (strstr (again, recipe_fields[i]));
  TfConfig back;
  g_assert_true (tf_config_from_json (&back, again, "again", &error));
  g_autofree char *twice = tf_config_to_json (&back);
  g_assert_cmpstr (twice, ==, again);
  g_assert_cmpint (back.d_model, ==, c.d_model);
  g_assert_cmpint (back.patch_size, ==, c.patch_size);
}

static void
test_recipe_errors (void)
{
  TfConfig c = valid_config ();
  /* the old files' recipe, which writes no field: each case adds its own */
  c.prediction = TF_PREDICTION_EPS;
  c.t_sampling = TF_T_SAMPLING_UNIFORM;
  g_autofree char *json = tf_config_to_json (&c);
  const struct { const char *extra, *fragment; } cases[] = {
    { "\"prediction\":\"noise\"", "'prediction' is 'noise', expected eps, v or x" },
    { "\"prediction\":1", "'prediction' is '1', expected eps, v or x" },
    { "\"t_sampling\":\"beta\"", "'t_sampling' is 'beta'" },
    { "\"t_scale\":0", "'t_scale' 0" },
    { "\"t_mean\":\"a\"", "'t_mean' is 'a', expected a number" },
    { "\"min_snr_gamma\":-1", "'min_snr_gamma' is -1" },
    { "\"time_conditioning\":\"concat\"", "'time_conditioning' is 'concat'" },
    { "\"image_encoder\":\"vae\"", "'image_encoder' is 'vae', expected linear, unet or conv" },
    { "\"image_encoder\":\"unet\",\"unet_channels\":1.5", "'unet_channels' is '1.5', expected a whole number" },
    { "\"image_encoder\":\"unet\",\"unet_channels\":0", "'unet_channels' is 0, expected 1 to 4096" },
    { "\"image_encoder\":\"unet\",\"unet_skips\":0", "'unet_skips' is '0', expected true or false" },
    { "\"image_encoder\":\"conv\",\"conv_channels\":0", "'conv_channels' is 0, expected 1 to 4096" },
    { "\"image_encoder\":\"conv\",\"conv_channels\":4097", "'conv_channels' is 4097, expected 1 to 4096" },
    { "\"image_encoder\":\"conv\",\"conv_channels\":\"many\"", "'conv_channels' is 'many', expected a whole number" },
    { "\"image_rope\":\"2d\"", "'image_rope' is '2d', expected 1d or axial" },
    { "\"image_rope\":true", "'image_rope' is 'true', expected 1d or axial" },
    { "\"prediction\":[1]", "'prediction' is missing or not a value" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *field = g_strconcat (cases[i].extra, ",\"schedule\":", NULL);
      g_autofree char *bad = replace (json, "\"schedule\":", field);
      expect_json_error (bad, cases[i].fragment);
    }
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_config_apply_recipe (&c, "prediction", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "not key=value"));
  g_clear_error (&error);
  g_assert_false (tf_config_apply_recipe (&c, "shape=round", &error));
  g_assert_nonnull (strstr (error->message, "unknown recipe field 'shape'"));
  g_assert_nonnull (strstr (error->message, "conv_channels, image_rope, image_size or patch_size)"));
  g_clear_error (&error);
  /* the image's size and patches (issue 14: 64×64 in 8×8 patches) */
  TfConfig big = c;
  g_assert_true (tf_config_apply_recipe (&big, "image_size=64,patch_size=8", &error));
  g_assert_no_error (error);
  g_assert_cmpint (big.image_size, ==, 64);
  g_assert_cmpint (big.patch_size, ==, 8);
  g_assert_true (tf_config_validate (&big, "recipe", &error));
  g_assert_no_error (error);
  g_assert_false (tf_config_apply_recipe (&big, "patch_size=big", &error));
  g_assert_nonnull (strstr (error->message, "'patch_size' is 'big', expected a whole number"));
  g_clear_error (&error);
  g_assert_true (tf_config_apply_recipe (&big, "patch_size=7", &error));
  g_assert_false (tf_config_validate (&big, "recipe", &error));
  g_assert_nonnull (strstr (error->message, "image_size 64 is not a multiple of patch_size 7"));
}

/* Min-SNR-γ weights in closed form, and the noise levels training draws. */
static void
test_recipe_weights_and_levels (void)
{
  TfConfig c = valid_config ();
  g_assert_cmpfloat (tf_diffusion_loss_weight (&c, 0.3), ==, 1.0);   /* off */
  c.min_snr_gamma = 5.0;
  const double abar[] = { 0.999, 0.9, 0.5, 0.01, 1e-9 };
  for (guint i = 0; i < G_N_ELEMENTS (abar); i++)
    {
      const double snr = abar[i] / (1 - abar[i]), m = MIN (snr, 5.0);
      c.prediction = TF_PREDICTION_EPS;
      g_assert_cmpfloat_with_epsilon (tf_diffusion_loss_weight (&c, abar[i]), m / snr, 1e-12);
      c.prediction = TF_PREDICTION_V;
      g_assert_cmpfloat_with_epsilon (tf_diffusion_loss_weight (&c, abar[i]), m / (snr + 1), 1e-12);
      c.prediction = TF_PREDICTION_X;
      g_assert_cmpfloat_with_epsilon (tf_diffusion_loss_weight (&c, abar[i]), m, 1e-12);
    }

  /* Uniform draws are the stream's integers in the range, as before recipes. */
  c.t_sampling = TF_T_SAMPLING_UNIFORM;
  TfRng a, b;
  tf_rng_seed (&a, 9);
  tf_rng_seed (&b, 9);
  for (int i = 0; i < 100; i++)
    g_assert_cmpint (tf_diffusion_sample_t (&c, &a, 1, 1000), ==,
                     1 + (int) tf_rng_below (&b, 1000));

  /* Logit-normal: every level in range, the median near T·sigmoid(mean), and
   * the middle far more likely than the ends. */
  c.t_sampling = TF_T_SAMPLING_LOGIT_NORMAL;
  c.t_mean = 0.5;
  c.t_scale = 1.0;
  int counts[10] = { 0 }, below_median = 0;
  const int n = 20000, median = (int) ceil (1000 / (1 + exp (-0.5)));
  for (int i = 0; i < n; i++)
    {
      int t = tf_diffusion_sample_t (&c, &a, 1, 1000);
      g_assert_cmpint (t, >=, 1);
      g_assert_cmpint (t, <=, 1000);
      counts[(t - 1) / 100]++;
      below_median += t < median;
    }
  g_assert_cmpint (abs (below_median - n / 2), <, n / 50);
  g_assert_cmpint (counts[5], >, 3 * counts[0]);
  g_assert_cmpint (counts[6], >, 3 * counts[9]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/config/presets", test_presets);
  g_test_add_func ("/config/json-round-trip", test_json_round_trip);
  g_test_add_func ("/config/json-exponents", test_json_exponents);
  g_test_add_func ("/config/json-control-characters", test_json_control_characters);
  g_test_add_func ("/config/json-errors", test_json_errors);
  g_test_add_func ("/config/recipe/json", test_recipe_json);
  g_test_add_func ("/config/recipe/conv", test_recipe_conv);
  g_test_add_func ("/config/recipe/image-rope", test_recipe_image_rope);
  g_test_add_func ("/config/recipe/old-file", test_recipe_old_file);
  g_test_add_func ("/config/recipe/errors", test_recipe_errors);
  g_test_add_func ("/config/recipe/weights-and-levels", test_recipe_weights_and_levels);
  return g_test_run ();
}
