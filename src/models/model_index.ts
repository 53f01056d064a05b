/**
 * A diffusers pipeline folder's `model_index.json`: which component lives in which sub-folder and
 * of which class. The class picks the builder (COMPONENT_CLASSES); components the engine does not
 * need (a safety checker, a feature extractor) are ignored, and a class it has no builder for is
 * refused with the file and the key named.
 */
import { ModelConfigError } from './unet_2d_config.ts';

/** What a component is to the engine, by its class. */
export type ComponentRole = 'unet' | 'autoencoder' | 'scheduler' | 'text_encoder' | 'tokenizer';

/** The classes the engine builds, and the role each plays in a pipeline. */
export const COMPONENT_CLASSES: Readonly<Record<string, ComponentRole>> = {
  UNet2DModel: 'unet',
  UNet2DConditionModel: 'unet',
  CLIPTextModel: 'text_encoder',
  CLIPTokenizer: 'tokenizer',
  CLIPTokenizerFast: 'tokenizer',
  AutoencoderKL: 'autoencoder',
  VQModel: 'autoencoder',
  // Every scheduler's config holds the β schedule the DDIM sampler takes (and only that is read).
  DDIMScheduler: 'scheduler',
  DDPMScheduler: 'scheduler',
  PNDMScheduler: 'scheduler',
  LMSDiscreteScheduler: 'scheduler',
  EulerDiscreteScheduler: 'scheduler',
  EulerAncestralDiscreteScheduler: 'scheduler',
  DPMSolverMultistepScheduler: 'scheduler',
  DDIMInverseScheduler: 'scheduler',
};

/** Components a pipeline may list that sampling does not use. */
const UNUSED_COMPONENTS = new Set(['safety_checker', 'feature_extractor', 'image_encoder']);

export interface PipelineComponent {
  /** The key in model_index.json, which is also the sub-folder's name. */
  name: string;
  library: string;
  className: string;
  role: ComponentRole;
}

export interface ModelIndex {
  /** The pipeline's own class (LDMPipeline, StableDiffusionPipeline, ...). */
  className: string;
  unet: PipelineComponent;
  autoencoder?: PipelineComponent;
  scheduler?: PipelineComponent;
  textEncoder?: PipelineComponent;
  tokenizer?: PipelineComponent;
}

/** Reads model_index.json (parsed): the components the engine builds, each with its role. */
export function parseModelIndex(raw: unknown, file = 'model_index.json'): ModelIndex {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelConfigError(`${file}: expected a JSON object`);
  const entries = raw as Record<string, unknown>;
  const components: PipelineComponent[] = [];
  for (const [name, value] of Object.entries(entries)) {
    // Keys starting with '_' are the pipeline's own; others that are not [library, class] are options.
    if (name.startsWith('_') || !Array.isArray(value)) continue;
    const [library, className] = value;
    if (library === null || className === null || UNUSED_COMPONENTS.has(name)) continue;
    if (typeof library !== 'string' || typeof className !== 'string') {
      throw new ModelConfigError(`${file}: '${name}' must be [library, class], got ${JSON.stringify(value)}`);
    }
    const role = COMPONENT_CLASSES[className];
    if (!role) {
      throw new ModelConfigError(
        `${file}: '${name}' has class '${className}', which the engine does not build (it builds ${
          Object.keys(COMPONENT_CLASSES).filter((c) => !c.endsWith('Scheduler')).join(', ')
        } and reads any scheduler's config)`,
      );
    }
    components.push({ name, library, className, role });
  }
  const byRole = (role: ComponentRole) => {
    const found = components.filter((c) => c.role === role);
    if (found.length > 1) throw new ModelConfigError(`${file}: more than one ${role}: ${found.map((c) => `'${c.name}'`).join(', ')}`);
    return found[0];
  };
  const unet = byRole('unet');
  if (!unet) throw new ModelConfigError(`${file}: no UNet component (a 'unet' of class UNet2DModel or UNet2DConditionModel)`);
  const className = typeof entries._class_name === 'string' ? entries._class_name : 'DiffusionPipeline';
  const textEncoder = byRole('text_encoder');
  const tokenizer = byRole('tokenizer');
  if (unet.className === 'UNet2DConditionModel') {
    for (
      const [role, component] of [['text_encoder', textEncoder], ['tokenizer', tokenizer], ['autoencoder', byRole('autoencoder')]] as const
    ) {
      if (!component) throw new ModelConfigError(`${file}: a text-conditioned UNet needs a ${role} component, and none is listed`);
    }
  }
  return { className, unet, autoencoder: byRole('autoencoder'), scheduler: byRole('scheduler'), textEncoder, tokenizer };
}

/** The class a component's own config.json names must be the one model_index.json gave it. */
export function checkComponentClass(component: PipelineComponent, config: unknown, file: string): void {
  const named = (config as Record<string, unknown> | null)?._class_name;
  if (named !== undefined && named !== component.className) {
    throw new ModelConfigError(`${file}: _class_name '${named}' differs from '${component.className}' in model_index.json`);
  }
}
