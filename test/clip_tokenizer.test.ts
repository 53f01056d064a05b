import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { parseSafetensors, toInt32 } from '../src/io/safetensors.ts';
import {
  type ClipTokenizer,
  createClipTokenizer,
  loadClipTokenizer,
  TokenizerError,
  type TokenizerFiles,
  truncationMessage,
} from '../src/text/clip_tokenizer.ts';

const s = suite('clip_tokenizer');

const SD = '../shared/golden/sd';
const FOLDER = `${SD}/tiny-sd/tokenizer`;
const read = (name: string) => readFileSync(`${FOLDER}/${name}`, 'utf8');
const files: TokenizerFiles = {
  vocab: read('vocab.json'),
  merges: read('merges.txt'),
  tokenizerConfig: read('tokenizer_config.json'),
  specialTokensMap: read('special_tokens_map.json'),
};
const cases = JSON.parse(readFileSync(`${SD}/tokenizer_cases.json`, 'utf8')) as {
  pad_token: string;
  cases: { prompt: string; input_ids: number[] }[];
};

let sd1: ClipTokenizer;
s.before(() => {
  sd1 = createClipTokenizer(files);
});

/** SD 2.x's tokenizer files: the same vocabulary and merges, `!` as the pad token (as an AddedToken object in one file). */
function sd2Files(): TokenizerFiles {
  const config = JSON.parse(files.tokenizerConfig as string);
  const map = JSON.parse(files.specialTokensMap as string);
  config.pad_token = '!';
  map.pad_token = { content: '!', lstrip: false, normalized: false, rstrip: false, single_word: false };
  return { ...files, tokenizerConfig: JSON.stringify(config), specialTokensMap: map };
}

function rejects(changed: Partial<TokenizerFiles>, file: string, pattern: RegExp): void {
  try {
    createClipTokenizer({ ...files, ...changed });
  } catch (error) {
    assert.instance(error, TokenizerError);
    assert.is((error as TokenizerError).file, file);
    assert.ok((error as Error).message.startsWith(`${file}: `), (error as Error).message);
    assert.not.match((error as Error).message, /\n/);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a TokenizerError for ${file} matching ${pattern}`);
}

const differingPositions = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).flatMap((v, i) => (v === b[i] ? [] : [i])).concat(a.length === b.length ? [] : [-1]);

s('the ids of every prompt in tokenizer_cases.json equal the reference exactly', () => {
  assert.is(sd1.maxLength, 77);
  assert.is(sd1.padToken, cases.pad_token);
  assert.ok(cases.cases.length >= 8);
  for (const { prompt, input_ids } of cases.cases) {
    const { ids } = sd1.encode(prompt);
    const wrong = differingPositions(ids, input_ids);
    console.log(`  ${JSON.stringify(prompt.slice(0, 48))}: ${wrong.length} of 77 ids differ`);
    assert.equal(wrong, [], `prompt ${JSON.stringify(prompt)}: ids differ at ${wrong.join(', ')}`);
  }
});

s('a batch is [B, 77] and equals text.input_ids of sd.safetensors', () => {
  const file = parseSafetensors(new Uint8Array(readFileSync(`${SD}/sd.safetensors`)));
  const entry = file.tensors.get('text.input_ids')!;
  assert.equal(entry.shape, [8, 77]);
  const reference = toInt32(entry);
  const batch = sd1.encodeBatch(cases.cases.map((c) => c.prompt));
  assert.is(batch.batch, 8);
  assert.is(batch.length, 77);
  assert.instance(batch.inputIds, Int32Array);
  const wrong = differingPositions(batch.inputIds, reference);
  console.log(`  batch of 8: ${wrong.length} of ${reference.length} ids differ from text.input_ids`);
  assert.equal(wrong, []);
  assert.equal(batch.truncations.map((t) => t.index), [7], 'only the long prompt is cut');
});

s('truncation: the long prompt loses its tokens past 75, counted and spelled out as diffusers warns', () => {
  const prompt = cases.cases[7].prompt;
  const repeat = 'a very long prompt about a lighthouse on a cliff at dusk, oil painting,';
  assert.is(prompt, Array(12).fill(repeat).join(' '), 'the prompt is 12 repeats');
  // Each repeat is 16 tokens (14 words, 2 commas), as the golden ids show.
  const perRepeat = sd1.encodeText(repeat);
  assert.is(perRepeat.length, 16);
  assert.equal(perRepeat, cases.cases[7].input_ids.slice(1, 17));
  const { ids, truncated, truncatedText } = sd1.encode(prompt);
  assert.is(truncated, 12 * 16 - 75);
  assert.is(ids[76], sd1.eosId);
  // Token 75 is the 12th of the 5th repeat ("dusk"); the cut text runs from there to the end.
  const rest = Array(7).fill(repeat).join(' ');
  assert.is(truncatedText, `dusk, oil painting, ${rest}`);
  const [truncation] = sd1.encodeBatch(['a horse', prompt]).truncations;
  assert.equal(truncation, { index: 1, tokens: 117, text: truncatedText });
  assert.is(
    truncationMessage(truncation, sd1.maxLength),
    `The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: ${truncatedText}`,
  );
});

s('exactly 75 tokens fit; the 76th is reported', () => {
  const fits = sd1.encode(Array(75).fill('a').join(' '));
  assert.is(fits.truncated, 0);
  assert.is(fits.truncatedText, '');
  assert.equal([fits.ids[75], fits.ids[76]], [320, sd1.eosId]);
  const over = sd1.encode(Array(75).fill('a').join(' ') + ' horse');
  assert.is(over.truncated, 1);
  assert.is(over.truncatedText, 'horse');
  assert.equal(Array.from(over.ids), Array.from(fits.ids));
});

s("SD 2.x's pad token '!': padding with id 0, and every '!' of a prompt becomes the special token", () => {
  const sd2 = createClipTokenizer(sd2Files());
  assert.is(sd2.padToken, '!');
  assert.is(sd2.padId, 0);
  const horse = sd2.encode('a horse');
  assert.equal(Array.from(horse.ids.slice(0, 5)), [49406, 320, 4558, 49407, 0]);
  assert.ok(horse.ids.slice(4).every((id) => id === 0));
  // diffusers issue 4153: transformers' CLIPTokenizer with SD 2.x's files gives six 0s for "! !! !!!"
  // where SD 1.x's files (and open_clip) give the words !</w> !!</w> !!!</w> = 256 748 995.
  assert.equal(Array.from(sd2.encode('! !! !!!').ids.slice(0, 9)), [49406, 0, 0, 0, 0, 0, 0, 49407, 0]);
  assert.equal(Array.from(sd1.encode('! !! !!!').ids.slice(0, 6)), [49406, 256, 748, 995, 49407, 49407]);
  assert.equal(sd2.tokenize('horse!!'), ['horse</w>', '!', '!']);
});

s('special tokens in a prompt are kept whole; the rest is lower-cased and whitespace collapsed', () => {
  assert.equal(sd1.tokenize('A <|endoftext|>B'), ['a</w>', '<|endoftext|>', 'b</w>']);
  assert.equal(sd1.encodeText('!<|endoftext|>'), [256, 49407]);
  assert.equal(sd1.tokenize('  Multiple \t\n SPACES '), sd1.tokenize('multiple spaces'));
  assert.equal(sd1.tokenize("it's"), ['it</w>', "'s</w>"]);
});

s("transformers' text clean-up without ftfy: control characters dropped, CJK split, NFC", () => {
  assert.equal(sd1.tokenize('ho\u200Brse\u0007'), sd1.tokenize('horse'), 'zero-width space and BEL are dropped');
  assert.equal(sd1.tokenize('cafe\u0301'), sd1.tokenize('caf\u00e9'), 'NFC');
  assert.equal(sd1.tokenize('猫猫'), sd1.tokenize('猫 猫'), 'each CJK ideograph is its own word');
  assert.equal(sd1.tokenize('a\u00a0b\u3000c'), sd1.tokenize('a b c'), 'Unicode spaces separate words');
});

s('decode reverses encodeText for plain text', () => {
  const text = 'a photograph of an astronaut riding a horse, zürich 🐱';
  assert.is(sd1.decode(sd1.encodeText(text)), text);
});

s('repeated words come from the cache with the same result', () => {
  const first = sd1.encodeText('lighthouse lighthouse');
  assert.equal(first.slice(0, 1), first.slice(1));
  assert.equal(sd1.encodeText('lighthouse'), first.slice(0, 1));
});

s('the files may be given parsed, and tokenizer_config.json sets model_max_length', () => {
  const merges = (files.merges as string).trim().split('\n').slice(1).map((line) => line.split(' ') as [string, string]);
  const parsed = createClipTokenizer({
    vocab: JSON.parse(files.vocab as string),
    merges,
    tokenizerConfig: { model_max_length: 8 },
  });
  assert.equal(Array.from(parsed.encode('a photograph of an astronaut riding a horse').ids), [
    49406,
    320,
    8853,
    539,
    550,
    18376,
    6765,
    49407,
  ]);
  assert.is(parsed.encode('a photograph of an astronaut riding a horse').truncated, 2);
  assert.is(parsed.padToken, '<|endoftext|>', "CLIPTokenizer's defaults without the config files");
});

s('loadClipTokenizer reads through a callback and names a missing file', async () => {
  const loaded = await loadClipTokenizer(async (name) => name === 'special_tokens_map.json' ? undefined : read(name));
  assert.equal(Array.from(loaded.encode('a horse').ids), Array.from(sd1.encode('a horse').ids));
  try {
    await loadClipTokenizer(async (name) => (name === 'merges.txt' ? undefined : read(name)));
    assert.unreachable('expected a TokenizerError');
  } catch (error) {
    assert.instance(error, TokenizerError);
    assert.match((error as Error).message, /^merges\.txt: missing/);
  }
});

s('malformed vocab.json: a one-line TokenizerError naming the file', () => {
  rejects({ vocab: '{"a": 1,' }, 'vocab.json', /not valid JSON/);
  rejects({ vocab: '[1, 2]' }, 'vocab.json', /JSON object, not an array/);
  rejects({ vocab: '{}' }, 'vocab.json', /holds no tokens/);
  rejects({ vocab: '{"a</w>": "320"}' }, 'vocab.json', /id of "a<\/w>" is "320"/);
  rejects({ vocab: '{"a</w>": 1.5}' }, 'vocab.json', /not a non-negative integer/);
  rejects({ vocab: '{"a</w>": -1}' }, 'vocab.json', /not a non-negative integer/);
  const noPad = JSON.parse(files.vocab as string);
  delete noPad['<|endoftext|>'];
  rejects({ vocab: noPad }, 'vocab.json', /no entry for the eos token "<\|endoftext\|>"/);
  const noBang = JSON.parse(files.vocab as string);
  delete noBang['!'];
  rejects({ ...sd2Files(), vocab: noBang }, 'vocab.json', /no entry for the pad token "!"/);
});

s('malformed merges.txt: a one-line TokenizerError naming the file and line', () => {
  rejects({ merges: 'i n\nt h\n' }, 'merges.txt', /first line should be the '#version' header/);
  rejects({ merges: '#version: 0.2\ni n\nt h e\n' }, 'merges.txt', /line 3 should be two symbols/);
  rejects({ merges: '#version: 0.2\ni n\n\nt h\n' }, 'merges.txt', /line 3 should be two symbols/);
  rejects({ merges: '#version: 0.2\n' }, 'merges.txt', /holds no merges/);
  rejects({ merges: [['i', 'n'], ['t']] as unknown as [string, string][] }, 'merges.txt', /merge 1 should be a pair/);
});

s('malformed tokenizer_config.json and special_tokens_map.json: a one-line TokenizerError naming the file', () => {
  rejects({ tokenizerConfig: 'not json' }, 'tokenizer_config.json', /not valid JSON/);
  rejects({ tokenizerConfig: '"CLIPTokenizer"' }, 'tokenizer_config.json', /JSON object/);
  rejects({ tokenizerConfig: '{"model_max_length": 1e30}' }, 'tokenizer_config.json', /model_max_length should be an integer/);
  rejects({ tokenizerConfig: '{"model_max_length": "77"}' }, 'tokenizer_config.json', /model_max_length/);
  rejects({ specialTokensMap: '{"pad_token": 7}' }, 'special_tokens_map.json', /pad_token should be a token string/);
  rejects({ specialTokensMap: '{"bos_token": {"lstrip": false}}' }, 'special_tokens_map.json', /bos_token .*"content"/);
  rejects({ specialTokensMap: '{"pad_token": null}' }, 'special_tokens_map.json', /pad_token is null/);
  rejects({ specialTokensMap: '{"pad_token": "<pad>"}' }, 'vocab.json', /no entry for the pad token "<pad>"/);
  rejects({ specialTokensMap: '{"additional_special_tokens": "x"}' }, 'special_tokens_map.json', /should be a list/);
});

s.run();
