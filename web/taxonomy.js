// The coarser answer of an unsure verdict, in the page: the genus or family the top species
// share (model_training/taxonomy.py), worded as the bot words it (bot/replies.py). Everything
// it reads is in the export's metadata.taxonomy (web/export.py's page_taxonomy): the rule's
// parameters, each class's genus and family, and per language the bot's sentences.

// Mirrors model_training/taxonomy.py's group_of, with its parameters as the export wrote them
// (`taxonomy.group_rule`): when the verdict is unsure, the best species' genus, else its family,
// if at least `min_species` of the top-5 are in it and they hold at least `above` of the
// confidence. `top` is the top-5 [{index, p}], best first. Returns {level, name, members (the
// top-5 entries in it with at least `named_above` of the confidence, best first; every one for
// an export without it), confidence (of all of them)}, or null. tests/test_web.py checks that
// the two agree on many answers.
export function groupOf(top, verdict, taxonomy) {
  const rule = taxonomy?.group_rule;
  const best = top.length ? taxonomy?.classes[top[0].index] : null;
  if (!rule || !best || !rule.unsure.includes(verdict)) return null;
  for (const level of rule.levels) {
    const name = best[level];
    if (!name) continue;
    const members = top.filter(({ index }) => taxonomy.classes[index]?.[level] === name);
    const confidence = members.reduce((sum, { p }) => sum + p, 0);
    if (members.length >= rule.min_species && confidence >= rule.above) {
      const named = members.filter(({ p }) => p >= (rule.named_above ?? 0));
      return { level, name, members: named, confidence };
    }
  }
  return null;
}

// A class name as the bot shows it: first letter upper case (bot/i18n.py's display_name).
const displayName = (name) => name.slice(0, 1).toUpperCase() + name.slice(1);

// The group's sentence in the words of one language (`words`: taxonomy.languages[language], the
// bot's catalogue), as bot/replies.py's group_line says it (one name alone, more joined by
// "or"): [text, italic] pieces, the genus italic. `names` are the class names in that language, index N = class N.
export function groupPieces(group, words, names) {
  const shown = group.members.map(({ index }) => displayName(names[index]));
  const species =
    shown.length > 1
      ? fill(words.or, { species: shown.slice(0, -1).join(", "), last: shown.at(-1) })
      : shown[0];
  const values = {
    genus: [group.name, true],
    family: [words.families[group.name] ?? group.name, false],
    species: [species, false],
  };
  // "… the genus {genus}, perhaps {species}." -> text, value, text, value, text.
  return words[group.level]
    .split(/(\{\w+\})/)
    .filter(Boolean)
    .map((piece) => values[piece.slice(1, -1)] ?? [piece, false]);
}

// Python's str.format for named fields only, which is all the bot's sentences use.
const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, key) => values[key]);
