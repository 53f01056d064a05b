/**
 * A model's weights file in either format diffusers writes: safetensors, or a PyTorch pickle
 * (`diffusion_pytorch_model.bin`, torch.save of a state dict), told apart by their first bytes.
 */
import { parseSafetensors, type SafetensorsFile, serializeSafetensors, type TensorToWrite, toFloat32 } from './safetensors.ts';
import { describeValue } from './pickle.ts';
import {
  parseTorchFile,
  readTorchFile,
  stateDictEntries,
  TorchFileError,
  torchFileIsCompressed,
  torchFormat,
  TorchTensor,
} from './torch.ts';

export type WeightsFormat = 'safetensors' | 'torch';

export function weightsFormat(bytes: Uint8Array): WeightsFormat {
  return torchFormat(bytes) ? 'torch' : 'safetensors';
}

/** The tensors of a weights file of either format, read synchronously (see `prepareWeights`). */
export function parseWeightsFile(bytes: Uint8Array): SafetensorsFile {
  if (weightsFormat(bytes) === 'safetensors') return parseSafetensors(bytes);
  return torchStateDict(parseTorchFile(bytes).value);
}

/**
 * Weights as `parseWeightsFile` reads them: the bytes themselves, except for a torch zip whose
 * entries were deflated (torch never does; a re-zipped file may), which is decompressed here
 * (asynchronously, as browsers only decompress so) and handed on as safetensors.
 */
export async function prepareWeights(bytes: Uint8Array): Promise<Uint8Array> {
  if (!torchFileIsCompressed(bytes)) return bytes;
  return toSafetensors(torchStateDict((await readTorchFile(bytes)).value));
}

/** A state dict as a safetensors file, every tensor as float32 (the engine computes in float32). */
export function toSafetensors(file: SafetensorsFile, metadata?: Record<string, string>): Uint8Array {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, entry] of file.tensors) tensors[name] = { dtype: 'F32', shape: entry.shape, data: toFloat32(entry) };
  return serializeSafetensors(tensors, metadata);
}

function torchStateDict(value: unknown): SafetensorsFile {
  const isStateDict = value instanceof Map && [...value.values()].every((v) => v instanceof TorchTensor);
  if (!isStateDict) {
    throw new TorchFileError(
      `the PyTorch file holds ${describeValue(value)} rather than a state dict of tensors ` +
        '(a training checkpoint? turn it into a model folder with: sample.ts convert)',
    );
  }
  return stateDictEntries(value);
}
