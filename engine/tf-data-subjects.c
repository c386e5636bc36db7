/* tf-data-subjects.c: which sense of a word the pictures show (issue 16).
 *
 * The image sources draw Fashion-MNIST clothes, coloured shapes and emoji.
 * When someone asks "what is a sneaker?" the answer should be the shoe the
 * model draws, not "someone who acts in a stealthy manner". This file lists
 * the drawable subjects with the WordNet sense that fits the picture; the
 * WordNet loader (tf-data.c) resolves them, gives them to the `subjects`
 * source and keeps their other noun senses out of `wordnet`'s definitions. */
#include "tf-data-private.h"

#include <string.h>

/* The Fashion-MNIST classes and the nouns the fashion captions use for them
 * (tf-data.c, fashion_phrases), the shapes and the colours of the shapes
 * source (tf-data-shapes.c). A sense is named by the start of its WordNet
 * gloss as the loader keeps it (a leading "(usually in the plural)" note
 * is dropped); where WordNet lacks the sense the captions mean, the
 * definition is written here. */
const TfSubjectSense tf_subject_senses[] = {
  /* the ten classes, as the source names them */
  { "t-shirt", "a close-fitting pullover shirt", NULL, TF_SUBJECT_CORE },
  { "trousers", "a garment extending from the waist to the knee or ankle", NULL,
    TF_SUBJECT_CORE | TF_SUBJECT_PLURAL },
  { "pullover", "a sweater that is put on by pulling it over the head", NULL, TF_SUBJECT_CORE },
  { "dress", "a one-piece garment for a woman", NULL, TF_SUBJECT_CORE },
  { "coat", "an outer garment that has sleeves", NULL, TF_SUBJECT_CORE },
  { "sandal", "a shoe consisting of a sole fastened by straps", NULL, TF_SUBJECT_CORE },
  { "shirt", "a garment worn on the upper half of the body", NULL, TF_SUBJECT_CORE },
  { "sneaker", "a canvas shoe with a pliable rubber sole", NULL, TF_SUBJECT_CORE },
  { "bag", "a flexible container with a single opening", NULL, TF_SUBJECT_CORE },
  { "ankle boot", NULL, "a boot that reaches just above the ankle", TF_SUBJECT_CORE },
  /* the other nouns of the fashion captions */
  { "tee", NULL, "a t-shirt, a close-fitting pullover shirt", 0 },
  { "tee shirt", "a close-fitting pullover shirt", NULL, 0 },
  { "top", "a garment (especially for women) that extends from the shoulders", NULL, 0 },
  { "pants", NULL, "trousers, a garment extending from the waist to the ankle and covering each "
    "leg separately", TF_SUBJECT_PLURAL },
  { "sweater", "a crocheted or knitted garment covering the upper part of the body", NULL, 0 },
  { "jumper", "a crocheted or knitted garment covering the upper part of the body", NULL, 0 },
  { "frock", "a one-piece garment for a woman", NULL, 0 },
  { "jacket", "a short coat", NULL, 0 },
  { "blouse", "a top worn by women", NULL, 0 },
  { "trainer", NULL, "a sneaker, a canvas shoe with a pliable rubber sole", 0 },
  { "running shoe", "a light comfortable shoe designed for running", NULL, 0 },
  { "handbag", "a container used for carrying money and small personal items", NULL, 0 },
  { "purse", "a container used for carrying money and small personal items", NULL, 0 },
  { "tote bag", "a capacious bag or basket", NULL, 0 },
  { "boot", "footwear that covers the whole foot and lower leg", NULL, 0 },
  /* the shapes */
  { "circle", "ellipse in which the two axes are of equal length", NULL, TF_SUBJECT_CORE },
  { "square", "a plane rectangle with four equal sides", NULL, TF_SUBJECT_CORE },
  { "triangle", "a three-sided polygon", NULL, TF_SUBJECT_CORE },
  { "star", "a plane figure with 5 or more points", NULL, TF_SUBJECT_CORE },
  { "heart", "a plane figure with rounded sides curving inward at the top", NULL, TF_SUBJECT_CORE },
  { "cross", "a marking that consists of lines that cross each other", NULL, TF_SUBJECT_CORE },
  /* the colours: no article ("red is red color or pigment") */
  { "red", "red color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "orange", "orange color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "yellow", "yellow color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "green", "green color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "blue", "blue color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "purple", "a purple color or pigment", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "pink", "a light shade of red", NULL, TF_SUBJECT_CORE | TF_SUBJECT_MASS },
  { "black", "the quality or state of the achromatic color of least lightness", NULL,
    TF_SUBJECT_CORE | TF_SUBJECT_MASS },
};
const int tf_n_subject_senses = G_N_ELEMENTS (tf_subject_senses);

/* WordNet's lexicographer files (lexnames(5WN)). */
enum {
  LEX_ACT = 4, LEX_ANIMAL = 5, LEX_ARTIFACT = 6, LEX_BODY = 8, LEX_COMMUNICATION = 10,
  LEX_FOOD = 13, LEX_LOCATION = 15, LEX_OBJECT = 17, LEX_PERSON = 18, LEX_PHENOMENON = 19,
  LEX_PLANT = 20, LEX_SHAPE = 25,
};

const guint8 *
tf_subject_lexfiles_for_group (const char *group)
{
  /* An emoji named "bat" in "Animals & Nature" is the animal, not the club,
   * and the "bank" of "Travel & Places" the building, not the river's: the
   * sense is the first (in WordNet's order of frequency) from the first
   * file of the group's list that has one. Flags and components name no
   * drawable noun. */
  static const struct {
    const char *group;
    guint8      lexfiles[5];   /* in order of preference, 0-terminated */
  } groups[] = {
    { "Smileys & Emotion", { LEX_BODY, LEX_PERSON, LEX_ARTIFACT, 0 } },
    { "People & Body", { LEX_BODY, LEX_PERSON, 0 } },
    { "Animals & Nature", { LEX_ANIMAL, LEX_PLANT, 0 } },
    { "Food & Drink", { LEX_FOOD, LEX_PLANT, LEX_ARTIFACT, 0 } },
    { "Travel & Places", { LEX_ARTIFACT, LEX_OBJECT, LEX_PHENOMENON, LEX_LOCATION, 0 } },
    { "Activities", { LEX_ARTIFACT, LEX_ACT, 0 } },
    { "Objects", { LEX_ARTIFACT, 0 } },
    { "Symbols", { LEX_SHAPE, LEX_COMMUNICATION, LEX_ARTIFACT, 0 } },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (groups); i++)
    if (strcmp (group, groups[i].group) == 0)
      return groups[i].lexfiles;
  return NULL;
}
