/** A weight as the model files hold it: its PyTorch name, shape and float32 values. */
export interface WeightArray {
  name: string;
  shape: number[];
  data: Float32Array;
}
