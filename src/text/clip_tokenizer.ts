/**
 * CLIP's byte-level BPE tokenizer, as transformers' `CLIPTokenizer` runs when ftfy is not
 * installed (the tokenizer diffusers' StableDiffusionPipeline uses), for browsers, Deno and Node
 * alike: it takes the text of a pipeline folder's `tokenizer/` files, however they were read.
 *
 * ```ts
 * const tokenizer = createClipTokenizer({ vocab, merges, tokenizerConfig, specialTokensMap });
 * const { inputIds, truncations } = tokenizer.encodeBatch(['a photograph of an astronaut riding a horse', '']);
 * // inputIds: Int32Array [2, 77]; truncations: one entry per prompt longer than 75 tokens
 * ```
 *
 * Steps, in transformers' order: the special tokens (bos, eos, unk, pad and any additional ones)
 * are split out of the text first, by exact match, and become their own ids; each stretch of text
 * between them loses its control characters (all of Unicode's category C but tab, newline and
 * carriage return), gets spaces around CJK ideographs, is NFC-normalised, lower-cased and its
 * whitespace collapsed; CLIP's pattern cuts it into words, each word's UTF-8 bytes become GPT-2's
 * printable byte characters, and BPE merges the adjacent pair of lowest rank until none is left,
 * `</w>` marking a word's last symbol. ftfy's text repair is not reproduced.
 *
 * Because the special tokens are matched first, SD 2.x's pad token `!` turns every `!` in a prompt
 * into id 0 rather than the word `!</w>`: transformers does this, so diffusers' embeddings have it.
 */

/** A tokenizer file that cannot be used; `file` names it (`vocab.json`, `merges.txt`, ...). */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
  }
}

/** A special token as the config files write it: a string, or an object with a `content` string. */
export type SpecialTokenEntry = string | { content: string; [key: string]: unknown };

export interface TokenizerFiles {
  /** vocab.json: its text, or the parsed object (token -> id). */
  vocab: string | Record<string, unknown>;
  /** merges.txt: its text (a `#version` line, then one merge a line), or the merges as pairs. */
  merges: string | readonly (readonly [string, string])[];
  /** tokenizer_config.json: its text or parsed object; absent, CLIPTokenizer's defaults apply. */
  tokenizerConfig?: string | Record<string, unknown>;
  /** special_tokens_map.json; its entries override tokenizer_config.json's, as in transformers. */
  specialTokensMap?: string | Record<string, unknown>;
}

/** The text of one prompt that did not fit. */
export interface Truncation {
  /** Which prompt of the batch. */
  index: number;
  /** How many tokens were cut off. */
  tokens: number;
  /** The cut-off tokens decoded back to text. */
  text: string;
}

export interface EncodedBatch {
  /** Token ids, row-major [batch, length]. */
  inputIds: Int32Array;
  batch: number;
  /** The sequence length: model_max_length (77 for Stable Diffusion). */
  length: number;
  /** One entry per prompt that was cut; empty when every prompt fit. */
  truncations: Truncation[];
}

const VOCAB = 'vocab.json';
const MERGES = 'merges.txt';
const CONFIG = 'tokenizer_config.json';
const SPECIAL_MAP = 'special_tokens_map.json';

const START_OF_TEXT = '<|startoftext|>';
const END_OF_TEXT = '<|endoftext|>';
const END_OF_WORD = '</w>';
/** CLIPTokenizer's constructor defaults, used where neither config file names a token. */
const DEFAULT_SPECIAL_TOKENS = { bos_token: START_OF_TEXT, eos_token: END_OF_TEXT, unk_token: END_OF_TEXT, pad_token: END_OF_TEXT };
const DEFAULT_MAX_LENGTH = 77;
/** Far above any CLIP context (77); a config's placeholder such as 1e30 is refused rather than allocated. */
const MAX_MAX_LENGTH = 65536;
/** transformers reads merges.txt's lines [1, 49152 - 256 - 2 + 1): CLIP's vocabulary holds no more merges than that. */
const MAX_MERGES = 49152 - 256 - 2;
/** Words are cached as they are seen; a page that tokenizes forever starts the cache afresh at this size. */
const CACHE_LIMIT = 100_000;

// transformers' pattern (regex module, IGNORECASE); JavaScript's `u` flag gives \p{..} and Unicode case folding.
const WORD_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
// BasicTokenizer._clean_text: NUL, U+FFFD and category C go; \t \n \r and category Zs become spaces.
const DROPPED_CHARACTERS = /(?![\t\n\r])[\p{C}\uFFFD]/gu;
const CJK_IDEOGRAPH =
  /[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}]/gu;

/** GPT-2's bytes_to_unicode: each byte as a printable character, so that BPE never sees spaces or control codes. */
const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
})();
const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((char, byte) => [char, byte]));
const UTF8 = new TextEncoder();

/** Reads the tokenizer files (see `TokenizerFiles`); every problem is a `TokenizerError` naming the file. */
export function createClipTokenizer(files: TokenizerFiles): ClipTokenizer {
  const vocab = parseVocab(files.vocab);
  const ranks = parseMerges(files.merges);
  const config = files.tokenizerConfig === undefined ? {} : jsonObject(files.tokenizerConfig, CONFIG);
  const specialMap = files.specialTokensMap === undefined ? {} : jsonObject(files.specialTokensMap, SPECIAL_MAP);

  const special = (key: keyof typeof DEFAULT_SPECIAL_TOKENS): string => {
    const [file, entry] = key in specialMap && specialMap[key] !== undefined
      ? [SPECIAL_MAP, specialMap[key]]
      : key in config && config[key] !== undefined
      ? [CONFIG, config[key]]
      : [CONFIG, DEFAULT_SPECIAL_TOKENS[key]];
    return specialTokenContent(entry, file, key);
  };
  const tokenId = (token: string, key: string): number => {
    const id = vocab.get(token);
    if (id === undefined) throw new TokenizerError(VOCAB, `has no entry for the ${key} ${JSON.stringify(token)}`);
    return id;
  };
  const names = { bos: special('bos_token'), eos: special('eos_token'), unk: special('unk_token'), pad: special('pad_token') };
  const additional = additionalSpecialTokens(specialMap, SPECIAL_MAP) ?? additionalSpecialTokens(config, CONFIG) ?? [];
  const specialIds = new Map<string, number>();
  for (const [key, token] of Object.entries(names)) specialIds.set(token, tokenId(token, `${key} token`));
  for (const token of additional) specialIds.set(token, tokenId(token, 'additional special token'));

  return new ClipTokenizer(vocab, ranks, {
    bos: specialIds.get(names.bos)!,
    eos: specialIds.get(names.eos)!,
    unk: specialIds.get(names.unk)!,
    pad: specialIds.get(names.pad)!,
    padToken: names.pad,
    specialIds,
    maxLength: maxLength(config),
  });
}

/**
 * Reads the files through `readText(name)` (a name such as `vocab.json`; it resolves to undefined
 * for a missing optional file) and builds the tokenizer: the same code for `fetch` and for a disk.
 */
export async function loadClipTokenizer(readText: (name: string) => Promise<string | undefined>): Promise<ClipTokenizer> {
  const required = async (name: string): Promise<string> => {
    const text = await readText(name);
    if (text === undefined) throw new TokenizerError(name, 'missing: a CLIP tokenizer folder holds vocab.json and merges.txt');
    return text;
  };
  return createClipTokenizer({
    vocab: await required(VOCAB),
    merges: await required(MERGES),
    tokenizerConfig: await readText(CONFIG),
    specialTokensMap: await readText(SPECIAL_MAP),
  });
}

interface SpecialIds {
  bos: number;
  eos: number;
  unk: number;
  pad: number;
  padToken: string;
  specialIds: Map<string, number>;
  maxLength: number;
}

export class ClipTokenizer {
  /** The padded length of every sequence: model_max_length from tokenizer_config.json (default 77). */
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly padId: number;
  /** The pad token's text: `<|endoftext|>` for SD 1.x, `!` for SD 2.x. */
  readonly padToken: string;
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #idToToken: ReadonlyMap<number, string>;
  readonly #ranks: ReadonlyMap<string, number>;
  readonly #specialIds: ReadonlyMap<string, number>;
  readonly #specialPattern: RegExp;
  readonly #cache = new Map<string, readonly string[]>();

  /** Use `createClipTokenizer` or `loadClipTokenizer`, which check the files. */
  constructor(vocab: ReadonlyMap<string, number>, ranks: ReadonlyMap<string, number>, special: SpecialIds) {
    this.#vocab = vocab;
    this.#ranks = ranks;
    this.#idToToken = new Map([...vocab].map(([token, id]) => [id, token]));
    this.maxLength = special.maxLength;
    this.bosId = special.bos;
    this.eosId = special.eos;
    this.unkId = special.unk;
    this.padId = special.pad;
    this.padToken = special.padToken;
    this.#specialIds = special.specialIds;
    // Longest first, so that a token never loses to one of its own prefixes.
    const alternatives = [...special.specialIds.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.#specialPattern = new RegExp(`(${alternatives.join('|')})`, 'u');
  }

  /** The BPE tokens of a text, without bos/eos: `tokenize('A cat!')` is `['a</w>', 'cat</w>', '!</w>']`. */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    // split() with a capturing group alternates text, special token, text, ...
    const parts = text.split(this.#specialPattern);
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 1) {
        tokens.push(parts[i]);
        continue;
      }
      for (const match of normalize(parts[i]).matchAll(WORD_PATTERN)) {
        const word = Array.from(UTF8.encode(match[0]), (byte) => BYTE_TO_CHAR[byte]).join('');
        tokens.push(...this.#bpe(word));
      }
    }
    return tokens;
  }

  /** The ids of a text's tokens, without bos/eos or padding; a token outside the vocabulary is unk. */
  encodeText(text: string): number[] {
    return this.tokenize(text).map((token) => this.#specialIds.get(token) ?? this.#vocab.get(token) ?? this.unkId);
  }

  /**
   * One prompt as the text encoder takes it: [bos] + the first maxLength - 2 tokens + [eos],
   * padded to maxLength with the pad token. `truncated` counts the tokens cut off and `truncatedText`
   * spells them out (empty when the prompt fit).
   */
  encode(text: string): { ids: Int32Array; truncated: number; truncatedText: string } {
    const tokens = this.encodeText(text);
    const room = this.maxLength - 2;
    const ids = new Int32Array(this.maxLength).fill(this.padId);
    ids[0] = this.bosId;
    ids.set(tokens.slice(0, room), 1);
    ids[1 + Math.min(room, tokens.length)] = this.eosId;
    const cut = tokens.slice(room);
    return { ids, truncated: cut.length, truncatedText: cut.length ? this.decode(cut) : '' };
  }

  /** Several prompts as one [batch, maxLength] Int32Array, with each prompt's truncation. */
  encodeBatch(prompts: readonly string[]): EncodedBatch {
    const inputIds = new Int32Array(prompts.length * this.maxLength);
    const truncations: Truncation[] = [];
    prompts.forEach((prompt, index) => {
      const { ids, truncated, truncatedText } = this.encode(prompt);
      inputIds.set(ids, index * this.maxLength);
      if (truncated) truncations.push({ index, tokens: truncated, text: truncatedText });
    });
    return { inputIds, batch: prompts.length, length: this.maxLength, truncations };
  }

  /** Ids back to text, as transformers' decode: `</w>` becomes a space, bytes are read as UTF-8 (bad ones as U+FFFD). */
  decode(ids: Iterable<number>): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.#idToToken.get(id);
      if (token === undefined) continue;
      for (const char of token.replaceAll(END_OF_WORD, ' ')) bytes.push(char === ' ' ? 0x20 : CHAR_TO_BYTE.get(char) ?? 0x3f);
    }
    return cleanUpTokenizationSpaces(new TextDecoder().decode(Uint8Array.from(bytes)).trim());
  }

  /** A word's BPE symbols: the pair of lowest merge rank is joined, everywhere in the word, until no pair has a rank. */
  #bpe(word: string): readonly string[] {
    if (word === START_OF_TEXT || word === END_OF_TEXT) return [word];
    const cached = this.#cache.get(word);
    if (cached) return cached;
    let symbols = Array.from(word);
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.#ranks.get(symbols[i] + ' ' + symbols[i + 1]);
        if (rank !== undefined && rank < best) [best, first, second] = [rank, symbols[i], symbols[i + 1]];
      }
      if (best === Infinity) break;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === first && symbols[i + 1] === second && i + 1 < symbols.length) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(symbols[i]);
        }
      }
      symbols = merged;
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(word, symbols);
    return symbols;
  }
}

/** diffusers' warning for a prompt that did not fit, so that the CLI and a page can say the same. */
export function truncationMessage(truncation: Truncation, maxLength: number): string {
  return `The following part of your input was truncated because CLIP can only handle sequences up to ${maxLength} tokens: ` +
    truncation.text;
}

/** transformers' BasicTokenizer without punctuation splitting or accent stripping (CLIPTokenizer's ftfy fallback). */
function normalize(text: string): string {
  const cleaned = text.replace(DROPPED_CHARACTERS, '').replace(CJK_IDEOGRAPH, ' $& ').normalize('NFC');
  return cleaned.split(/\s+/u).filter((word) => word !== '').map((word) => word.toLowerCase()).join(' ');
}

/** transformers' clean_up_tokenization: the space a decode leaves before punctuation and contractions goes. */
function cleanUpTokenizationSpaces(text: string): string {
  return text.replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',').replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value);
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

function jsonObject(input: string | Record<string, unknown>, file: string): Record<string, unknown> {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(stripBom(input));
    } catch (error) {
      throw new TokenizerError(file, `is not valid JSON (${(error as Error).message.split('\n')[0]})`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError(file, `should hold a JSON object, not ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function parseVocab(input: TokenizerFiles['vocab']): Map<string, number> {
  const object = jsonObject(input, VOCAB);
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(object)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 2 ** 31 - 1) {
      throw new TokenizerError(VOCAB, `the id of ${JSON.stringify(token)} is ${describe(id)}, not a non-negative integer`);
    }
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new TokenizerError(VOCAB, 'holds no tokens');
  return vocab;
}

/** Merge ranks keyed by "first second"; as transformers does, a repeated pair keeps its last rank. */
function parseMerges(input: TokenizerFiles['merges']): Map<string, number> {
  const pairs: string[][] = [];
  if (typeof input === 'string') {
    // transformers: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1], each line split on whitespace.
    const lines = stripBom(input).trim().split('\n');
    if (!lines[0].startsWith('#version')) {
      throw new TokenizerError(MERGES, `the first line should be the '#version' header, not ${describe(lines[0])}`);
    }
    for (let i = 1; i < lines.length && i <= MAX_MERGES; i++) {
      const symbols = lines[i].trim().split(/\s+/u).filter((symbol) => symbol !== '');
      if (symbols.length !== 2) {
        throw new TokenizerError(MERGES, `line ${i + 1} should be two symbols separated by a space, not ${describe(lines[i])}`);
      }
      pairs.push(symbols);
    }
  } else {
    if (!Array.isArray(input)) throw new TokenizerError(MERGES, `should be text or a list of pairs, not ${describe(input)}`);
    for (const [i, pair] of input.slice(0, MAX_MERGES).entries()) {
      if (!Array.isArray(pair) || pair.length !== 2 || pair.some((s) => typeof s !== 'string' || s === '' || /\s/u.test(s))) {
        throw new TokenizerError(MERGES, `merge ${i} should be a pair of symbols, not ${describe(pair)}`);
      }
      pairs.push([...pair]);
    }
  }
  if (pairs.length === 0) throw new TokenizerError(MERGES, 'holds no merges');
  return new Map(pairs.map(([first, second], rank) => [`${first} ${second}`, rank]));
}

function specialTokenContent(entry: unknown, file: string, key: string): string {
  if (entry === null) throw new TokenizerError(file, `${key} is null; CLIP needs one`);
  const content = typeof entry === 'object' && !Array.isArray(entry) ? (entry as { content?: unknown }).content : entry;
  if (typeof content !== 'string' || content === '') {
    throw new TokenizerError(file, `${key} should be a token string or an object with a "content" string, not ${describe(entry)}`);
  }
  return content;
}

function additionalSpecialTokens(object: Record<string, unknown>, file: string): string[] | undefined {
  const list = object.additional_special_tokens;
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw new TokenizerError(file, `additional_special_tokens should be a list, not ${describe(list)}`);
  return list.map((entry, i) => specialTokenContent(entry, file, `additional_special_tokens[${i}]`));
}

function maxLength(config: Record<string, unknown>): number {
  const value = config.model_max_length ?? DEFAULT_MAX_LENGTH;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 2 || value > MAX_MAX_LENGTH) {
    throw new TokenizerError(CONFIG, `model_max_length should be an integer from 2 to ${MAX_MAX_LENGTH}, not ${describe(value)}`);
  }
  return value;
}
