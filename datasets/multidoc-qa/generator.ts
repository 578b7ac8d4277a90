/**
 * kvlab's multi-document QA generator (v1): short passages about synthetic people, companies and
 * cities, and one question whose answer needs a known amount of cross-chunk information.
 *
 * Chunk types (each a passage of 30-90 tokens):
 *   intro   names a person: profession, home city, employer, age (+ filler sentences)
 *   ref     refers to a person ONLY by pronoun: pet, instrument, favourite colour (+ filler).
 *           The pronoun means the person named in the nearest preceding intro chunk.
 *   org     names a company: home city, founding year, product
 *   city    names a city: region, river
 * Question kinds:
 *   single          one named chunk holds the answer (intro, org or city)
 *   two-hop         a person's intro chunk + the chunk of their employer or home city
 *   back-reference  a person's pet/instrument/colour: in a ref chunk, whose pronoun only resolves
 *                   through the intro chunk before it (a ref chunk prefilled alone cannot know whom
 *                   it describes)
 * Layout invariant: every ref chunk comes after its person's intro chunk with no other intro chunk
 * between them; other chunks are shuffled around. Within a context every person shares one pronoun
 * (names carry no gender), and every asked attribute has distinct values across the context's
 * entities, so a question has exactly one answer and guessing among look-alike chunks fails.
 *
 * Deterministic: the same (seed, kind, index) gives the same record on every machine.
 * GeneratorOptions.chunks (unset: v1) makes longer contexts: more entities, and the v1 selection
 * topped up with chunks that name their entity (intro without ref, company, city).
 * GeneratorOptions.refMix (unset: v1) makes ref chunks read like retrieved passages: mostly
 * self-contained sentences about a named landmark, with one or two pronoun sentences about the
 * person (the only tokens that need the earlier chunk).
 */
import { QA_KINDS, type QaKind, type QaRecord } from '../../src/eval/qa/dataset.js';
import { seededUniform } from '../../src/model/generate.js';

export { QA_KINDS, type QaKind, type QaRecord };

export const GENERATOR_VERSION = 1;
export const DATASET_NAME = 'kvlab-multidoc-qa';

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rng, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
function shuffle<T>(r: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
/** n distinct values drawn by `make` (retries on repeats). */
function distinct<T>(r: Rng, n: number, make: (r: Rng) => T, taken: Set<T> = new Set()): T[] {
  const out: T[] = [];
  while (out.length < n) {
    const v = make(r);
    if (!taken.has(v)) { taken.add(v); out.push(v); }
  }
  return out;
}

const SYL = ['ba', 'bel', 'bri', 'cor', 'da', 'del', 'dor', 'el', 'fa', 'fen', 'gal', 'gor', 'ha', 'hel', 'is', 'ka',
  'kel', 'lan', 'li', 'lor', 'ma', 'mer', 'mi', 'nor', 'na', 'os', 'pa', 'per', 'ra', 'ren', 'ros', 'sa', 'sel', 'ta',
  'tor', 'tri', 'ul', 'va', 'vel', 'ven', 'wen', 'ya', 'zan', 'zor'];
const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
const word = (r: Rng, a: number, b: number) => cap(Array.from({ length: int(r, a, b) }, () => pick(r, SYL)).join(''));
const personName = (r: Rng) => `${word(r, 2, 2)} ${word(r, 2, 3)}`;
const CITY_END = ['mere', 'ford', 'holm', 'wick', 'dale', 'port', 'stead', 'burg'];
const cityName = (r: Rng) => word(r, 1, 2) + pick(r, CITY_END);
const ORG_END = ['Mills', 'Works', 'Guild', 'Company', 'Foundry', 'Trading', 'Press', 'Brewery'];
const orgName = (r: Rng) => `${word(r, 2, 2)} ${pick(r, ORG_END)}`;
const REGION_END = ['land', 'shire', 'mark', 'vale'];
const regionName = (r: Rng) => word(r, 1, 2) + pick(r, REGION_END);
const riverName = (r: Rng) => word(r, 1, 2);

const PROFESSIONS = ['potter', 'baker', 'sailor', 'teacher', 'painter', 'doctor', 'farmer', 'tailor', 'lawyer', 'nurse',
  'carpenter', 'miner', 'weaver', 'chemist', 'pilot', 'singer', 'dentist', 'gardener', 'butcher', 'architect',
  'librarian', 'plumber', 'jeweller', 'surveyor', 'fisher', 'mason', 'clerk', 'engineer', 'poet', 'judge'];
const PETS = ['heron', 'otter', 'parrot', 'tortoise', 'ferret', 'goat', 'hamster', 'rabbit', 'lizard', 'owl', 'cat',
  'dog', 'donkey', 'goose', 'snake', 'hedgehog', 'pony', 'crow', 'frog', 'spider'];
const INSTRUMENTS = ['flute', 'violin', 'harp', 'drum', 'cello', 'piano', 'trumpet', 'guitar', 'oboe', 'banjo',
  'clarinet', 'lute', 'organ', 'tuba', 'bagpipes', 'accordion', 'trombone', 'mandolin'];
const COLOURS = ['amber', 'crimson', 'teal', 'violet', 'olive', 'scarlet', 'indigo', 'silver', 'ochre', 'maroon',
  'turquoise', 'lilac', 'coral', 'navy', 'beige', 'emerald', 'ivory', 'saffron'];
const PRODUCTS = ['rope', 'glass', 'paper', 'soap', 'candles', 'bicycles', 'clocks', 'shoes', 'bricks', 'tea',
  'cheese', 'barrels', 'maps', 'lamps', 'saddles', 'nails', 'blankets', 'buttons', 'ink', 'kites'];
const PERSON_FILLER = ['likes long walks by the sea', 'has two older brothers', 'reads the news every evening',
  'grew up in a small house by a bridge', 'once won a prize at a village fair', 'rises early on most days',
  'enjoys cooking for friends', 'collects old coins', 'has never learned to swim', 'keeps a diary',
  'spends every summer in the hills', 'is known for a loud laugh', 'writes letters to a cousin abroad',
  'takes the train to work', 'visits the market on Saturdays', 'tends a small vegetable garden'];
const ORG_FILLER = ['It employs about two hundred people.', 'Its workshop stands near the old harbour.',
  'It sells most of its goods abroad.', 'Its founder started with a single cart.', 'It has a red sign over the door.',
  'It closes for two weeks every winter.'];
const CITY_FILLER = ['It has a busy market square.', 'Its old bridge is made of stone.', 'Many visitors come in the summer.',
  'It is famous for its autumn fair.', 'Its streets are narrow and steep.', 'A tall clock tower stands in its centre.'];

interface Person { name: string; profession: string; city: string; org: string; age: number; pet: string; instrument: string; colour: string }
interface Org { name: string; city: string; year: number; product: string }
interface City { name: string; region: string; river: string }

interface Pronoun { sub: string; obj: string; pos: string }
const PRONOUNS: Pronoun[] = [{ sub: 'She', obj: 'her', pos: 'Her' }, { sub: 'He', obj: 'him', pos: 'His' }];

/**
 * Landmarks of ref-mix ref chunks ("The Fen tower stands in Vatriport.") and self-contained
 * sentences about them, in words kvlab-qa's tokenizer already has whole (v1's vocabulary), so a
 * model fine-tuned from it reads them as words, not byte pieces.
 */
const LANDMARK_KINDS = ['tower', 'house', 'garden', 'square', 'market', 'bridge'];
const LANDMARK_FILLER = ['It is made of stone.', 'Many visitors come in the summer.', 'A tall clock stands in its centre.',
  'It stands near the river.', 'It is busy on most days.', 'It has a red door and a small garden.',
  'It closes for two weeks every winter.', 'It is famous for its autumn fair.'];
type Attr = 'pet' | 'instrument' | 'colour';
const ATTRS: readonly Attr[] = ['pet', 'instrument', 'colour'];

const article = (w: string) => (/^[aeiou]/.test(w) ? `an ${w}` : `a ${w}`);

function introText(r: Rng, p: Person, pr: Pronoun): string {
  const fill = shuffle(r, PERSON_FILLER.slice()).slice(0, int(r, 1, 3)).map((f) => `${pr.sub} ${f}.`);
  const rest = shuffle(r, [`${pr.sub} works for ${p.org}.`, `${pr.sub} is ${p.age} years old.`, ...fill]);
  return [`${p.name} is ${article(p.profession)} who lives in ${p.city}.`, ...rest].join(' ');
}

function refText(r: Rng, p: Person, pr: Pronoun): string {
  const fill = shuffle(r, PERSON_FILLER.slice()).slice(0, int(r, 1, 2)).map((f) => `${pr.sub} ${f}.`);
  const facts = shuffle(r, [`${pr.sub} keeps a pet ${p.pet}.`, `${pr.sub} plays the ${p.instrument}.`,
    `${pr.pos} favourite colour is ${p.colour}.`, ...fill]);
  // Every sentence refers to the person by pronoun: nothing in the chunk names them.
  return facts.join(' ');
}

/** One v1 attribute sentence about a person, by pronoun. */
function attrSentence(p: Person, pr: Pronoun, a: Attr): string {
  return a === 'pet' ? `${pr.sub} keeps a pet ${p.pet}.` : a === 'instrument' ? `${pr.sub} plays the ${p.instrument}.` : `${pr.pos} favourite colour is ${p.colour}.`;
}

/**
 * A ref-mix ref chunk: a landmark named in its first sentence, 2-3 more sentences about it (each
 * self-contained within the chunk: "It" is the landmark), and one or two pronoun sentences about
 * the person (the attribute `need`, when given, always among them), never first. Only those
 * sentences need the intro chunk before it; the chunk still never names the person.
 */
function refMixText(r: Rng, w: World, p: Person, pr: Pronoun, need: Attr | null): string {
  const name = `${word(r, 1, 2)} ${pick(r, LANDMARK_KINDS)}`;
  const named = [`The ${name} stands in ${pick(r, w.cities).name}.`, ...shuffle(r, LANDMARK_FILLER.slice()).slice(0, int(r, 2, 3))];
  const first = need ?? pick(r, ATTRS);
  const attrs = r() < 0.5 ? [first] : [first, pick(r, ATTRS.filter((a) => a !== first))];
  const body = named.slice(1);
  for (const a of attrs) body.splice(int(r, 0, body.length), 0, attrSentence(p, pr, a));
  return [named[0]!, ...body].join(' ');
}

function orgText(r: Rng, o: Org): string {
  const rest = shuffle(r, [`It was founded in ${o.year}.`, `It makes ${o.product}.`, ...shuffle(r, ORG_FILLER.slice()).slice(0, int(r, 1, 2))]);
  return [`${o.name} is a company based in ${o.city}.`, ...rest].join(' ');
}

function cityText(r: Rng, c: City): string {
  const rest = shuffle(r, [`The river ${c.river} flows through it.`, ...shuffle(r, CITY_FILLER.slice()).slice(0, int(r, 1, 2))]);
  return [`${c.name} is a city in the region of ${c.region}.`, ...rest].join(' ');
}

/** A question about one attribute: its text, the answer, and which chunks it needs. */
interface Question { input: string; answer: string; needs: string[]; attr?: Attr }

interface World { persons: Person[]; orgs: Org[]; cities: City[]; pr: Pronoun }

/** A world of `n` persons, `n` companies and `n` cities (v1: n = 3). */
function makeWorld(r: Rng, n = 3): World {
  const names = new Set<string>();
  const cities = distinct(r, n, cityName, names).map((name): City => ({ name, region: '', river: '' }));
  const regions = distinct(r, n, regionName, names), rivers = distinct(r, n, riverName, names);
  cities.forEach((c, i) => { c.region = regions[i]!; c.river = rivers[i]!; });
  const years = distinct(r, n, (rr) => int(rr, 1780, 1990));
  const products = distinct(r, n, (rr) => pick(rr, PRODUCTS));
  const orgs = distinct(r, n, orgName, names).map((name, i): Org => ({ name, city: pick(r, cities).name, year: years[i]!, product: products[i]! }));
  const prof = distinct(r, n, (rr) => pick(rr, PROFESSIONS)), pets = distinct(r, n, (rr) => pick(rr, PETS));
  const inst = distinct(r, n, (rr) => pick(rr, INSTRUMENTS)), cols = distinct(r, n, (rr) => pick(rr, COLOURS));
  const ages = distinct(r, n, (rr) => int(rr, 21, 79));
  const persons = distinct(r, n, personName, names).map((name, i): Person => ({
    name, profession: prof[i]!, city: pick(r, cities).name, org: pick(r, orgs).name, age: ages[i]!,
    pet: pets[i]!, instrument: inst[i]!, colour: cols[i]!,
  }));
  return { persons, orgs, cities, pr: pick(r, PRONOUNS) };
}

/** Every question of `kind` about the world's entities. Chunk ids: `intro:i`, `ref:i`, `org:i`, `city:i`. */
function questionsOf(w: World, kind: QaKind): Question[] {
  const out: Question[] = [];
  w.persons.forEach((P, p) => {
    const o = w.orgs.findIndex((x) => x.name === P.org), O = w.orgs[o]!;
    const c = w.cities.findIndex((x) => x.name === P.city), C = w.cities[c]!;
    if (kind === 'single') out.push(
      { input: `What is the profession of ${P.name}?`, answer: P.profession, needs: [`intro:${p}`] },
      { input: `In which city does ${P.name} live?`, answer: P.city, needs: [`intro:${p}`] },
      { input: `Which company does ${P.name} work for?`, answer: P.org, needs: [`intro:${p}`] });
    if (kind === 'two-hop') out.push(
      { input: `Which river flows through the city where ${P.name} lives?`, answer: C.river, needs: [`intro:${p}`, `city:${c}`] },
      { input: `In which region is the city where ${P.name} lives?`, answer: C.region, needs: [`intro:${p}`, `city:${c}`] },
      { input: `What does the company that ${P.name} works for make?`, answer: O.product, needs: [`intro:${p}`, `org:${o}`] },
      { input: `In which year was the company that ${P.name} works for founded?`, answer: String(O.year), needs: [`intro:${p}`, `org:${o}`] },
      { input: `In which city is the company that ${P.name} works for based?`, answer: O.city, needs: [`intro:${p}`, `org:${o}`] });
    if (kind === 'back-reference') out.push(
      { input: `What pet does ${P.name} keep?`, answer: P.pet, needs: [`intro:${p}`, `ref:${p}`], attr: 'pet' },
      { input: `Which instrument does ${P.name} play?`, answer: P.instrument, needs: [`intro:${p}`, `ref:${p}`], attr: 'instrument' },
      { input: `What is the favourite colour of ${P.name}?`, answer: P.colour, needs: [`intro:${p}`, `ref:${p}`], attr: 'colour' });
  });
  if (kind === 'single') {
    w.orgs.forEach((O, o) => out.push(
      { input: `What does ${O.name} make?`, answer: O.product, needs: [`org:${o}`] },
      { input: `In which year was ${O.name} founded?`, answer: String(O.year), needs: [`org:${o}`] },
      { input: `In which city is ${O.name} based?`, answer: O.city, needs: [`org:${o}`] }));
    w.cities.forEach((C, c) => out.push(
      { input: `Which river flows through ${C.name}?`, answer: C.river, needs: [`city:${c}`] },
      { input: `In which region is ${C.name}?`, answer: C.region, needs: [`city:${c}`] }));
  }
  return out;
}

/**
 * Picks 4-6 chunks: the evidence, then distractors. Back-reference questions always get at least
 * one other person's intro + ref pair, so the asked attribute appears in two or more ref chunks.
 */
function chooseChunks(r: Rng, q: Question, kind: QaKind, w: World): string[] {
  const n = int(r, 4, 6);
  const ix = w.persons.map((_, i) => i);
  const chosen = new Set(q.needs);
  if (kind === 'back-reference') {
    const self = Number(q.needs[0]!.split(':')[1]);
    const other = pick(r, ix.filter((i) => i !== self));
    chosen.add(`intro:${other}`).add(`ref:${other}`);
  }
  const pool = shuffle(r, ['intro', 'ref', 'org', 'city'].flatMap((t) => ix.map((i) => `${t}:${i}`)));
  for (const id of pool) {
    if (chosen.size >= n) break;
    if (chosen.has(id)) continue;
    const intro = `intro:${id.split(':')[1]}`;
    // A ref chunk comes with its person's intro chunk, or not at all.
    if (id.startsWith('ref') && !chosen.has(intro)) {
      if (chosen.size + 2 > n) continue;
      chosen.add(intro);
    }
    chosen.add(id);
  }
  return [...chosen];
}

/**
 * Adds self-contained distractors (an intro chunk without its ref, a company, a city: each names
 * its entity) to a v1 selection until it holds `n` chunks.
 */
function addDistractors(r: Rng, ids: string[], n: number, w: World): string[] {
  const chosen = new Set(ids);
  const ix = w.persons.map((_, i) => i);
  const pool = shuffle(r, ['intro', 'org', 'city'].flatMap((t) => ix.map((i) => `${t}:${i}`)).filter((id) => !chosen.has(id)));
  if (ids.length + pool.length < n) throw new RangeError(`a world of ${w.persons.length} persons cannot fill ${n} chunks`);
  return [...ids, ...pool.slice(0, Math.max(0, n - ids.length))];
}

/**
 * Orders chunk ids: person blocks (intro, then maybe some org/city chunks, then the ref) and the
 * other chunks shuffled as units.
 */
function order(r: Rng, ids: string[]): string[] {
  const set = new Set(ids);
  const units: string[][] = [];
  for (const id of ids) {
    const [t, i] = id.split(':') as [string, string];
    if (t === 'intro') units.push(set.has(`ref:${i}`) ? [id, `ref:${i}`] : [id]);
    else if (t !== 'ref') units.push([id]);
  }
  shuffle(r, units);
  const out: string[] = [];
  for (let u = 0; u < units.length; u++) {
    const unit = units[u]!;
    out.push(unit[0]!);
    if (unit.length === 2) {
      // Slip following non-person chunks between the intro and its ref now and then.
      while (u + 1 < units.length && units[u + 1]!.length === 1 && !units[u + 1]![0]!.startsWith('intro') && r() < 0.4) out.push(units[++u]![0]!);
      out.push(unit[1]!);
    }
  }
  return out;
}

/** `refMix`: ref chunks in the ref-mix form, each stating `need` (the asked attribute) when given. */
function chunkText(r: Rng, w: World, id: string, refMix?: { need: Attr | null }): string {
  const [t, i] = id.split(':') as [string, string];
  const k = Number(i);
  if (t === 'intro') return introText(r, w.persons[k]!, w.pr);
  if (t === 'ref') return refMix ? refMixText(r, w, w.persons[k]!, w.pr, refMix.need) : refText(r, w.persons[k]!, w.pr);
  if (t === 'org') return orgText(r, w.orgs[k]!);
  return cityText(r, w.cities[k]!);
}

/** Seed of record `index` of `kind` in a set seeded `seed` (independent streams per record). */
function recordSeed(seed: number, kind: QaKind, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const x of [QA_KINDS.indexOf(kind) + 1, index + 1]) h = (Math.imul(h ^ x, 0x85ebca6b) + 0x6b43a9b5) >>> 0;
  return h;
}

/**
 * Generator options. Unset (the default) is v1 exactly: 4-6 chunks from a world of 3 persons, 3
 * companies, 3 cities.
 */
export interface GeneratorOptions {
  /**
   * Chunks per context, [lo, hi] with 6 <= lo <= hi. The world grows to `ceil(hi / 2)` persons,
   * companies and cities; the v1 selection (4-6 chunks, same rules) is topped up with
   * self-contained distractors (intro chunks without their ref, company and city chunks) to
   * int(lo, hi) chunks. Records get dataset `...-v1-c<lo>-<hi>` and _id `v1-c<lo>-<hi>-s...`.
   */
  chunks?: readonly [number, number];
  /**
   * Ref-mix ref chunks: each names a landmark (where it stands, 2-3 more sentences about it) and
   * holds only one or two pronoun sentences about its person, v1's attribute sentences ("She keeps a
   * pet otter."). On a back-reference question every ref chunk of the context states the asked
   * attribute (so guessing among ref chunks still fails), sometimes with one more; otherwise one or
   * two attributes at random. The tokens that need the intro chunk are then about 5% (with `chunks`
   * 8-10) to 8% (v1's 4-6 chunks) of a back-reference context (v1: every ref sentence, 20-35%); a
   * ref chunk prefilled alone still cannot know whom it describes. World, question, selection and
   * order are v1's (same random draws up to the chunk texts). Records get `-rm` after the variant:
   * dataset `...-v1[-c<lo>-<hi>]-rm`, _id `v1[-c<lo>-<hi>]-rm-s...`.
   */
  refMix?: boolean;
}

function checkOptions(o: GeneratorOptions): void {
  if (o.chunks === undefined) return;
  const [lo, hi] = o.chunks;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 6 && lo <= hi && hi <= 30))
    throw new RangeError(`chunks must be integers with 6 <= lo <= hi <= 30, got [${lo}, ${hi}]`);
}

function build(seed: number, kind: QaKind, index: number, o: GeneratorOptions = {}) {
  checkOptions(o);
  const r = seededUniform(recordSeed(seed, kind, index));
  const w = makeWorld(r, o.chunks ? Math.max(3, Math.ceil(o.chunks[1] / 2)) : 3);
  const q = pick(r, questionsOf(w, kind));
  let picked = chooseChunks(r, q, kind, w);
  if (o.chunks) picked = addDistractors(r, picked, int(r, o.chunks[0], o.chunks[1]), w);
  const ids = order(r, picked);
  const chunks = ids.map((id) => chunkText(r, w, id, o.refMix ? { need: kind === 'back-reference' ? q.attr! : null } : undefined));
  const context = chunks.join('\n');
  const variant = (o.chunks ? `-c${o.chunks[0]}-${o.chunks[1]}` : '') + (o.refMix ? '-rm' : '');
  const record: QaRecord = {
    input: q.input, context, answers: [q.answer], length: context.split(/\s+/).length,
    dataset: `${DATASET_NAME}-v${GENERATOR_VERSION}${variant}`, _id: `v${GENERATOR_VERSION}${variant}-s${seed}-${kind}-${index}`, kind, chunks,
    evidence: q.needs.map((id) => ids.indexOf(id)).sort((a, b) => a - b),
  };
  return { r, w, ids, chunks, record };
}

/** One record: deterministic in (seed, kind, index). */
export function generateRecord(seed: number, kind: QaKind, index: number, o: GeneratorOptions = {}): QaRecord {
  return build(seed, kind, index, o).record;
}

export interface ExtraQuestion { input: string; answer: string; kind: QaKind }

/**
 * A training example: the record of generateRecord(seed, kind, index) plus up to `maxExtra` more
 * questions (any kind) that its chunks answer, in random order. Training on several questions per
 * context multiplies the answer signal per sequence; the first question is the record's.
 */
export function generateTrainingExample(seed: number, kind: QaKind, index: number, maxExtra: number, o: GeneratorOptions = {}): { record: QaRecord; extra: ExtraQuestion[] } {
  const { r, w, ids, chunks, record } = build(seed, kind, index, o);
  const have = new Set(ids);
  // Ref-mix ref chunks state only some attributes: a back-reference question needs its answer there.
  const stated = (q: Question) => !o.refMix || !q.attr || chunks[ids.indexOf(q.needs[1]!)]!.includes(` ${q.answer}.`);
  const all = QA_KINDS.flatMap((k) => questionsOf(w, k).filter((q) => q.input !== record.input && q.needs.every((n) => have.has(n)) && stated(q))
    .map((q) => ({ input: q.input, answer: q.answer, kind: k })));
  return { record, extra: shuffle(r, all).slice(0, int(r, 0, Math.min(maxExtra, all.length))) };
}

/** `count` records of `kind` from `seed`, indices `start`.. */
export function generateSet(seed: number, kind: QaKind, count: number, start = 0, o: GeneratorOptions = {}): QaRecord[] {
  return Array.from({ length: count }, (_, i) => generateRecord(seed, kind, start + i, o));
}

/** The chunk types of a record's chunks, recovered from their text (for the ordering invariant). */
export function chunkRoles(rec: QaRecord): { type: 'intro' | 'ref' | 'org' | 'city'; name: string | null }[] {
  return rec.chunks.map((c) => {
    if (/^(She|He|Her|His) /.test(c)) return { type: 'ref', name: null };
    const m = /^(.+?) is an? (company based|city in the region|(\w+) who lives)/.exec(c);
    if (!m) return { type: 'ref', name: null };
    return { type: m[2]!.startsWith('company') ? 'org' : m[2]!.startsWith('city') ? 'city' : 'intro', name: m[1]! };
  });
}
