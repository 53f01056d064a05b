// The tiled conv body of conv_tiled.wgsl with its weights passed between invocations by
// subgroupShuffle rather than staged in workgroup memory: half the workgroup memory traffic and
// one tile's stores per step fewer; the input tile is staged as in conv_tiled.wgsl. The variant
// has `enable subgroups;` and TILE_OC = 64, TILE_K = 16 (TILE_PX as conv_tiled.wgsl takes it).
//
// Each invocation computes 4 consecutive output channels oc0 + 4 ty .. + 3 x TILE_PX / 16 pixels
// px0 + tx, + 16, ..., so the 16 invocations of a row ty need the same 16 x 4 weights per step:
// each loads TILE_K / L of them (L = its subgroup's lanes in that row) as vec4s and the row reads
// them by shuffles. Nothing here assumes how the hardware groups invocations into subgroups, nor
// their size (any power of two from 4 to 128): each subgroup takes a contiguous range of
// "work ids" from a workgroup counter and its lanes the ids in lane order, so the lanes of a
// subgroup hold whole rows (or, under 16 lanes, parts of one row). A subgroup that is not full
// (the hardware may leave lanes inactive) reads its weights from storage, lane by lane.

#include "conv_tiled_common.wgsl"

var<workgroup> work_ids: atomic<u32>;

/** Set bits of `bits` (a subgroupBallot) for the lanes below `lane`. */
fn lanes_below(bits: vec4u, lane: u32) -> u32 {
  var count = 0u;
  for (var w = 0u; w < 4u; w++) {
    let first = 32u * w;
    var mask = 0u;
    if (lane >= first + 32u) {
      mask = 0xffffffffu;
    } else if (lane > first) {
      mask = (1u << (lane - first)) - 1u;
    }
    count += countOneBits(bits[w] & mask);
  }
  return count;
}

// Output channels oc .. oc + 3 of depth row k, zero past the depth or the padded channels
// (oc_stride is a multiple of 8, oc of 4: the four are all in or all out).
fn weight_vec4(k: u32, oc: u32, depth: u32) -> vec4<f32> {
  if (k >= depth || oc >= params.oc_stride) {
    return vec4<f32>(0.0);
  }
  let i = k * params.oc_stride + oc;
  return vec4<f32>(f32(weight[i]), f32(weight[i + 1u]), f32(weight[i + 2u]), f32(weight[i + 3u]));
}

fn conv_tiled(wid: vec3u, index: u32, lane: u32, lanes: u32) {
  let oc0 = wid.y * TILE_OC;
  let px0 = wid.x * TILE_PX;
  let out_pixels = params.out_height * params.out_width;
  let columns = params.batch * out_pixels;
  let conv_depth = params.in_channels * params.kernel_h * params.kernel_w;
  let depth = conv_depth + params.shortcut_channels;

  // This invocation's work id: its subgroup's first id (from the counter), plus its rank among
  // the subgroup's active lanes.
  let ballot = subgroupBallot(true);
  let count = countOneBits(ballot.x) + countOneBits(ballot.y) + countOneBits(ballot.z) + countOneBits(ballot.w);
  let leader = subgroupBroadcastFirst(lane);
  var first_id = 0u;
  if (lane == leader) {
    first_id = atomicAdd(&work_ids, count);
  }
  first_id = subgroupBroadcastFirst(first_id);
  let rank = lanes_below(ballot, lane);
  let work = first_id + rank;
  let tx = work % 16u;
  let ty = work / 16u;
  // The lanes of this subgroup in row ty, and this lane's place among them. Shuffles need a full
  // subgroup whose range starts a row (or a part of one): then lane == rank.
  let row_lanes = min(lanes, 16u);
  let in_row = rank % row_lanes;
  let row_lane0 = lane - in_row;
  let shuffled = count == lanes && first_id % row_lanes == 0u;
  let oc = oc0 + 4u * ty;

  let n0 = px0 / out_pixels;
  let n1 = (min(px0 + TILE_PX, columns) - 1u) / out_pixels;
  if (params.norm != 0u) {
    group_statistics(index, n0, n1 - n0 + 1u);
  }
  let column = staged_column(px0, index, columns, out_pixels);

  // acc[i][q][e]: channel oc + i, pixel px0 + tx + 16 (4 q + e).
  var acc: array<array<vec4<f32>, PX_VEC4S>, 4>;
  // Depth rows k0 + in_row + row_lanes m of channels oc .. oc + 3, for the row's shuffles.
  var held: array<vec4<f32>, 4>;
  let held_rows = TILE_K / row_lanes;
  for (var k0 = 0u; k0 < depth; k0 += TILE_K) {
    if (shuffled) {
      for (var m = 0u; m < held_rows; m++) {
        held[m] = weight_vec4(k0 + in_row + row_lanes * m, oc, depth);
      }
    }
    stage_input(column, index, k0, n0, conv_depth, depth);
    workgroupBarrier();
    for (var m = 0u; m < held_rows; m++) {
      for (var l = 0u; l < row_lanes; l++) {
        let kk = row_lanes * m + l;
        var a: vec4<f32>;
        if (shuffled) {
          a = subgroupShuffle(held[m], row_lane0 + l);
        } else {
          a = weight_vec4(k0 + kk, oc, depth);
        }
        var b: array<vec4<f32>, PX_VEC4S>;
        for (var q = 0u; q < PX_VEC4S; q++) {
          let p = tx + 64u * q;
          b[q] = vec4<f32>(vec4<act>(x_tile[kk][p], x_tile[kk][p + 16u], x_tile[kk][p + 32u], x_tile[kk][p + 48u]));
        }
        for (var i = 0u; i < 4u; i++) {
          for (var q = 0u; q < PX_VEC4S; q++) {
            acc[i][q] = fma(vec4<f32>(a[i]), b[q], acc[i][q]);
          }
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u * PX_VEC4S; j++) {
      store_output(oc + i, px0 + tx + 16u * j, acc[i][j / 4u][j % 4u]);
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) index: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
  conv_tiled(wid, index, lane, lanes);
}
