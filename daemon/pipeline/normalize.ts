// Text normalisation for word error rates: two transcripts that say the same thing should
// compare equal however they spell, punctuate or abbreviate it. The English normaliser follows
// the spirit of Whisper's (lowercase, no bracketed annotations or fillers, contractions expanded,
// numbers as digits, American spelling); the basic one only folds case, symbols and whitespace,
// for languages where those rules do not apply.

// Hesitations that transcribers write inconsistently (or not at all).
const FILLERS = /\b(?:hm+|mm+|mhm+|uh+|um+|uhm+|er+m?)\b/g;

// Contractions and colloquial forms, expanded. Order matters: specific before general.
const CONTRACTIONS: [RegExp, string][] = [
  [/\bwon't\b/g, 'will not'],
  [/\bcan't\b/g, 'can not'],
  [/\bshan't\b/g, 'shall not'],
  [/\bain't\b/g, 'is not'],
  [/\blet's\b/g, 'let us'],
  [/\by'all\b/g, 'you all'],
  [/\bma'am\b/g, 'madam'],
  [/\bo'clock\b/g, 'of the clock'],
  [/\bwanna\b/g, 'want to'],
  [/\bgonna\b/g, 'going to'],
  [/\bgotta\b/g, 'got to'],
  [/\bgimme\b/g, 'give me'],
  [/\blemme\b/g, 'let me'],
  [/\bkinda\b/g, 'kind of'],
  [/\bsorta\b/g, 'sort of'],
  [/\boutta\b/g, 'out of'],
  [/\bdunno\b/g, 'do not know'],
  [/\bi'ma\b/g, 'i am going to'],
  [/\b(would|could|should|must|might)a\b/g, '$1 have'],
  // "'d" and "'s" before a past participle are "had" and "has".
  [/'d (been|gone|done|got|had|seen|known|taken|made)\b/g, ' had $1'],
  [/'s (been|gone|done|got|had|seen|known|taken|made)\b/g, ' has $1'],
  [/n't\b/g, ' not'],
  [/'re\b/g, ' are'],
  [/'ve\b/g, ' have'],
  [/'ll\b/g, ' will'],
  [/'m\b/g, ' am'],
  [/'d\b/g, ' would'],
  // "'s" is "is" after pronouns and question words; after nouns it is a possessive.
  [/\b(it|that|what|there|here|he|she|who|where|how|when|why|this)'s\b/g, '$1 is'],
];

// Abbreviated titles and words, spelled out (the dot is optional; punctuation goes later).
const ABBREVIATIONS: [RegExp, string][] = [
  [/\bmr\b\.?/g, 'mister'],
  [/\bmrs\b\.?/g, 'missus'],
  [/\bmessrs\b\.?/g, 'messieurs'],
  [/\bdr\b\.?/g, 'doctor'],
  [/\bprof\b\.?/g, 'professor'],
  [/\bjr\b\.?/g, 'junior'],
  [/\bsr\b\.?/g, 'senior'],
  [/\bst\b\.?(?= [a-z])/g, 'saint'],
  [/\bcapt\b\.?/g, 'captain'],
  [/\bgov\b\.?/g, 'governor'],
  [/\blt\b\.?/g, 'lieutenant'],
  [/\bsgt\b\.?/g, 'sergeant'],
  [/\bvs\b\.?/g, 'versus'],
  [/\betc\b\.?/g, 'et cetera'],
  [/\bok\b/g, 'okay'],
  [/&/g, ' and '],
];

// British spellings → American ones (whole words; the usual -our, -re, -ise, -ll- cases).
const BRITISH_TO_AMERICAN: Record<string, string> = {
  colour: 'color', colours: 'colors', coloured: 'colored', colourful: 'colorful', favour: 'favor',
  favours: 'favors', favourite: 'favorite', favourites: 'favorites', favourable: 'favorable',
  honour: 'honor', honours: 'honors', honoured: 'honored', honourable: 'honorable', labour: 'labor',
  laboured: 'labored', neighbour: 'neighbor', neighbours: 'neighbors', neighbourhood: 'neighborhood',
  behaviour: 'behavior', behaviours: 'behaviors', behavioural: 'behavioral', humour: 'humor',
  humorous: 'humorous', rumour: 'rumor', rumours: 'rumors', flavour: 'flavor', flavours: 'flavors',
  harbour: 'harbor', harbours: 'harbors', vapour: 'vapor', vigour: 'vigor', valour: 'valor',
  armour: 'armor', odour: 'odor', endeavour: 'endeavor', glamour: 'glamor', saviour: 'savior',
  parlour: 'parlor', tumour: 'tumor', clamour: 'clamor', rancour: 'rancor', splendour: 'splendor',
  centre: 'center', centres: 'centers', centred: 'centered', theatre: 'theater', theatres: 'theaters',
  metre: 'meter', metres: 'meters', kilometre: 'kilometer', kilometres: 'kilometers',
  centimetre: 'centimeter', centimetres: 'centimeters', millimetre: 'millimeter', litre: 'liter',
  litres: 'liters', fibre: 'fiber', fibres: 'fibers', calibre: 'caliber', sombre: 'somber',
  spectre: 'specter', sabre: 'saber', lustre: 'luster', meagre: 'meager', manoeuvre: 'maneuver',
  manoeuvres: 'maneuvers', organise: 'organize', organised: 'organized', organising: 'organizing',
  organisation: 'organization', organisations: 'organizations', realise: 'realize', realised: 'realized',
  realising: 'realizing', recognise: 'recognize', recognised: 'recognized', recognising: 'recognizing',
  apologise: 'apologize', apologised: 'apologized', criticise: 'criticize', criticised: 'criticized',
  emphasise: 'emphasize', emphasised: 'emphasized', summarise: 'summarize', summarised: 'summarized',
  prioritise: 'prioritize', optimise: 'optimize', optimised: 'optimized', optimisation: 'optimization',
  minimise: 'minimize', maximise: 'maximize', customise: 'customize', customised: 'customized',
  initialise: 'initialize', initialised: 'initialized', initialisation: 'initialization',
  normalise: 'normalize', normalised: 'normalized', normalisation: 'normalization',
  standardise: 'standardize', standardised: 'standardized', synchronise: 'synchronize',
  synchronised: 'synchronized', authorise: 'authorize', authorised: 'authorized',
  authorisation: 'authorization', utilise: 'utilize', utilised: 'utilized', visualise: 'visualize',
  visualisation: 'visualization', characterise: 'characterize', categorise: 'categorize',
  memorise: 'memorize', specialise: 'specialize', specialised: 'specialized', localise: 'localize',
  localised: 'localized', localisation: 'localization', serialise: 'serialize', serialised: 'serialized',
  serialisation: 'serialization', analyse: 'analyze', analysed: 'analyzed', analysing: 'analyzing',
  paralyse: 'paralyze', catalyse: 'catalyze', catalogue: 'catalog', catalogues: 'catalogs',
  dialogue: 'dialog', dialogues: 'dialogs', analogue: 'analog', monologue: 'monolog',
  programme: 'program', programmes: 'programs', travelled: 'traveled', travelling: 'traveling',
  traveller: 'traveler', travellers: 'travelers', cancelled: 'canceled', cancelling: 'canceling',
  labelled: 'labeled', labelling: 'labeling', modelled: 'modeled', modelling: 'modeling',
  levelled: 'leveled', signalled: 'signaled', signalling: 'signaling', fuelled: 'fueled',
  marvellous: 'marvelous', jewellery: 'jewelry', counsellor: 'counselor', grey: 'gray', greys: 'grays',
  defence: 'defense', offence: 'offense', licence: 'license', pretence: 'pretense', cheque: 'check',
  cheques: 'checks', tyre: 'tire', tyres: 'tires', kerb: 'curb', plough: 'plow', mould: 'mold',
  mouldy: 'moldy', moult: 'molt', smoulder: 'smolder', pyjamas: 'pajamas', aeroplane: 'airplane',
  aeroplanes: 'airplanes', aluminium: 'aluminum', sceptical: 'skeptical', sceptic: 'skeptic',
  ageing: 'aging', judgement: 'judgment', acknowledgement: 'acknowledgment', enrol: 'enroll',
  enrolment: 'enrollment', fulfil: 'fulfill', fulfilment: 'fulfillment', skilful: 'skillful',
  wilful: 'willful', instalment: 'installment', paediatric: 'pediatric', encyclopaedia: 'encyclopedia',
  anaesthetic: 'anesthetic', oestrogen: 'estrogen', foetus: 'fetus', haemoglobin: 'hemoglobin',
  diarrhoea: 'diarrhea', manoeuvring: 'maneuvering', draught: 'draft', draughts: 'drafts',
  storey: 'story', storeys: 'stories', practise: 'practice', practised: 'practiced', whilst: 'while',
  amongst: 'among', learnt: 'learned', spelt: 'spelled', dreamt: 'dreamed', burnt: 'burned',
  speciality: 'specialty', artefact: 'artifact', artefacts: 'artifacts', axe: 'ax',
};

const UNITS: Record<string, number> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9,
};
const TEENS: Record<string, number> = {
  ten: 10, eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16,
  seventeen: 17, eighteen: 18, nineteen: 19,
};
const TENS: Record<string, number> = {
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
};
const SCALES: Record<string, number> = { thousand: 1e3, million: 1e6, billion: 1e9, trillion: 1e12 };
const ORDINAL_UNITS: Record<string, number> = {
  first: 1, second: 2, third: 3, fourth: 4, fifth: 5, sixth: 6, seventh: 7, eighth: 8, ninth: 9,
};

function ordinalSuffix(n: number): string {
  const lastTwo = n % 100;
  if (lastTwo >= 11 && lastTwo <= 13) return 'th';
  return ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
}

/** Spelled-out numbers → digits: "twenty one" → 21, "nineteen eighty four" stays two numbers
 *  only where English would ("nineteen hundred" → 1900), "one two three" → "1 2 3",
 *  "three point five" → 3.5, "twenty first" → 21st, "ten percent" → 10%. */
function wordsToDigits(words: string[]): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < words.length) {
    const parsed = parseNumber(words, i);
    if (!parsed) {
      out.push(words[i]!);
      i++;
      continue;
    }
    let text = String(parsed.value);
    i = parsed.next;
    if (parsed.ordinal) {
      text += ordinalSuffix(parsed.value);
    } else if (words[i] === 'point' && words[i + 1] !== undefined && words[i + 1]! in UNITS) {
      let frac = '';
      i++;
      while (i < words.length && words[i]! in UNITS) frac += String(UNITS[words[i++]!]);
      text += '.' + frac;
    }
    if (!parsed.ordinal && (words[i] === 'percent' || words[i] === 'per' && words[i + 1] === 'cent')) {
      i += words[i] === 'per' ? 2 : 1;
      text += '%';
    }
    out.push(text);
  }
  return out;
}

interface ParsedNumber {
  value: number;
  next: number;
  ordinal: boolean;
}

function parseNumber(words: string[], start: number): ParsedNumber | undefined {
  let total = 0; // completed thousands/millions/…
  let current = 0; // the part below the last scale word
  let lastScale = Infinity;
  let last: 'unit' | 'teen' | 'tens' | 'hundred' | 'scale' | undefined;
  let i = start;
  let ordinal = false;
  // "a hundred", "a thousand" are numbers; "a" alone is not.
  if (words[i] === 'a' && (words[i + 1] === 'hundred' || (words[i + 1] !== undefined && words[i + 1]! in SCALES))) {
    current = 1;
    last = 'unit';
    i++;
  }
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w in UNITS || w in ORDINAL_UNITS) {
      // A unit follows only a tens word, "hundred" or a scale ("twenty one", "one hundred one").
      if (last === 'unit' || last === 'teen' || (last === 'tens' && current % 10 !== 0)) break;
      if (w in ORDINAL_UNITS) {
        // A lone ordinal ("first", "second") stays a word; "twenty first" becomes 21st.
        if (last === undefined) break;
        current += ORDINAL_UNITS[w]!;
        ordinal = true;
        i++;
        break;
      }
      if (w === 'zero' && last !== undefined) break;
      current += UNITS[w]!;
      last = 'unit';
    } else if (w in TEENS) {
      if (last === 'unit' || last === 'teen' || last === 'tens') break;
      current += TEENS[w]!;
      last = 'teen';
    } else if (w in TENS) {
      if (last === 'unit' || last === 'teen' || last === 'tens') break;
      current += TENS[w]!;
      last = 'tens';
    } else if (w === 'hundred') {
      if (last === undefined || last === 'hundred' || current % 100 === 0 || current >= 100) break;
      current *= 100;
      last = 'hundred';
    } else if (w in SCALES) {
      const scale = SCALES[w]!;
      if (last === undefined || last === 'scale' || scale >= lastScale || current === 0) break;
      total += current * scale;
      current = 0;
      lastScale = scale;
      last = 'scale';
    } else if (w === 'and' && (last === 'hundred' || last === 'scale') && isNumberWord(words[i + 1])) {
      continue;
    } else {
      break;
    }
  }
  if (last === undefined && !ordinal) return undefined;
  // A trailing "and" that led nowhere is not part of the number.
  let next = i;
  while (next > start && words[next - 1] === 'and') next--;
  return { value: total + current, next, ordinal };
}

function isNumberWord(w: string | undefined): boolean {
  return w !== undefined && (w in UNITS || w in TEENS || w in TENS || w in ORDINAL_UNITS);
}

function removeBracketed(text: string): string {
  // Annotations such as [music], <laughs>, (inaudible) are not speech.
  return text.replace(/\[[^\]]*\]/g, ' ').replace(/<[^>]*>/g, ' ').replace(/\([^)]*\)/g, ' ');
}

function stripDiacritics(text: string): string {
  return text.normalize('NFKD').replace(/\p{Mn}/gu, '');
}

/** Whisper-style English normalisation for word error rates. */
export function normalizeEnglish(text: string): string {
  let s = text.toLowerCase();
  s = s.replace(/[\u2018\u2019\u02bc`]/g, "'");
  s = removeBracketed(s);
  // Dotted initialisms: "u.s.a." → "usa", so they match the undotted spelling.
  s = s.replace(/\b(?:[a-z]\.){2,}/g, (m) => m.replace(/\./g, '') + ' ');
  s = s.replace(FILLERS, ' ');
  s = s.replace(/\s+'/g, "'");
  for (const [re, rep] of CONTRACTIONS) s = s.replace(re, rep);
  for (const [re, rep] of ABBREVIATIONS) s = s.replace(re, rep);
  s = stripDiacritics(s);
  // Digit grouping and decimals survive punctuation removal: 1,000 → 1000, 3.5 stays.
  s = s.replace(/(\d),(?=\d{3}\b)/g, '$1');
  s = s.replace(/(\d)\.(?=\d)/g, '$1\u0000');
  s = s.replace(/(\d) ?%/g, '$1\u0001');
  s = s.replace(/'/g, '');
  s = s.replace(/[^\p{L}\p{N}\u0000\u0001]+/gu, ' ');
  s = s.replace(/\u0000/g, '.').replace(/\u0001/g, '%');
  const words = s.split(' ').filter((w) => w.length > 0);
  const digits = wordsToDigits(words).map((w) => BRITISH_TO_AMERICAN[w] ?? w);
  return digits.join(' ');
}

/** Language-neutral normalisation: lowercase, no bracketed annotations, symbols and
 *  punctuation → spaces, whitespace collapsed. Combining marks stay (they are letters in many
 *  scripts). */
export function normalizeBasic(text: string): string {
  let s = removeBracketed(text.normalize('NFKC').toLowerCase());
  s = s.replace(/[\p{P}\p{S}]+/gu, ' ');
  return s.split(/\s+/u).filter((w) => w.length > 0).join(' ');
}

/** The normaliser for a language code: English rules for `en` (or unknown), basic otherwise. */
export function normalizerFor(language?: string): (text: string) => string {
  return language === undefined || language === 'en' || language === 'english' ? normalizeEnglish : normalizeBasic;
}
