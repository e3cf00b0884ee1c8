// Unit tests of csdkit's viewer.js (GLB parser, camera math), run with node's built-in test runner:
//   node --test tests/js/
// tests/test_viewer_js.py runs them from pytest, with a GLB written by csdkit's exporter as a fixture.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const V = require(path.join(__dirname, "..", "..", "python", "csdkit", "viewer", "viewer.js"));

const close = (a, b, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);
const closeAll = (a, b, tol = 1e-9) => { assert.equal(a.length, b.length); a.forEach((x, i) => close(x, b[i], tol)); };

// A GLB from a glTF JSON object and a list of Uint8Arrays concatenated (4-aligned) into the BIN chunk.
// Returns {glb, offsets} where offsets[i] is the byte offset of part i.
function makeGLB(json, parts, opts = {}) {
  const offsets = [];
  let binLen = 0;
  for (const p of parts) { binLen += (4 - (binLen % 4)) % 4; offsets.push(binLen); binLen += p.byteLength; }
  binLen += (4 - (binLen % 4)) % 4;
  const doc = typeof json === "function" ? json(offsets, binLen) : json;
  let js = new TextEncoder().encode(typeof doc === "string" ? doc : JSON.stringify(doc));
  const jsLen = js.length + ((4 - (js.length % 4)) % 4);
  const total = 12 + 8 + jsLen + (parts.length ? 8 + binLen : 0);
  const out = new Uint8Array(total), dv = new DataView(out.buffer);
  dv.setUint32(0, opts.magic || 0x46546c67, true);
  dv.setUint32(4, opts.version || 2, true);
  dv.setUint32(8, opts.length || total, true);
  dv.setUint32(12, jsLen, true);
  dv.setUint32(16, 0x4e4f534a, true);
  out.fill(0x20, 20, 20 + jsLen);
  out.set(js, 20);
  if (parts.length) {
    const b = 20 + jsLen;
    dv.setUint32(b, binLen, true);
    dv.setUint32(b + 4, 0x004e4942, true);
    parts.forEach((p, i) => out.set(p, b + 8 + offsets[i]));
  }
  return out;
}
const bytesOf = (typed) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);

// Two triangles (a unit quad in z = 0) with interleaved position + normalized-uint8 UV, uint16 indices,
// no normals, under a node translated by (1, 2, 3) and scaled by 2.
function quadGLB(extra = {}) {
  const stride = 16;  // 3 floats + 2 uint8 UV + 2 bytes padding
  const verts = [[0, 0, 0, 0, 255], [1, 0, 0, 255, 255], [1, 1, 0, 255, 0], [0, 1, 0, 0, 0]];
  const vb = new Uint8Array(stride * 4), dv = new DataView(vb.buffer);
  verts.forEach((v, i) => {
    for (let k = 0; k < 3; k++) dv.setFloat32(i * stride + 4 * k, v[k], true);
    dv.setUint8(i * stride + 12, v[3]); dv.setUint8(i * stride + 13, v[4]);
  });
  const ib = bytesOf(new Uint16Array([0, 1, 2, 0, 2, 3]));
  return makeGLB((off) => Object.assign({
    asset: { version: "2.0" }, scene: 0, scenes: [{ nodes: [0] }],
    nodes: [{ translation: [1, 2, 3], scale: [2, 2, 2], children: [1] }, { mesh: 0 }],
    meshes: [{ primitives: [{ attributes: { POSITION: 0, TEXCOORD_0: 1 }, indices: 2 }] }],
    buffers: [{ byteLength: 64 + 12 }],
    bufferViews: [{ buffer: 0, byteOffset: off[0], byteLength: vb.byteLength, byteStride: stride },
                  { buffer: 0, byteOffset: off[1], byteLength: ib.byteLength }],
    accessors: [{ bufferView: 0, componentType: 5126, count: 4, type: "VEC3" },
                { bufferView: 0, byteOffset: 12, componentType: 5121, normalized: true, count: 4, type: "VEC2" },
                { bufferView: 1, componentType: 5123, count: 6, type: "SCALAR" }],
  }, extra), [vb, ib]);
}

test("perspective() is csdkit Cameras.proj (OpenGL, fov_y in degrees)", () => {
  const p = V.mat4.rows(V.perspective(90, 2, 0.5, 10));
  close(p[0][0], 0.5); close(p[1][1], 1); close(p[2][2], -(10.5) / 9.5); close(p[2][3], -2 * 10 * 0.5 / 9.5);
  close(p[3][2], -1); close(p[3][3], 0);
});

test("orbitEye() is Cameras.from_spherical's position", () => {
  closeAll(V.orbitEye(0, 0, 3, [0, 0, 0]), [0, 0, 3]);
  closeAll(V.orbitEye(0, 90, 2, [0, 0, 0]), [2, 0, 0], 1e-12);
  closeAll(V.orbitEye(90, 0, 1, [1, 1, 1]), [1, 2, 1], 1e-12);
  const e = V.orbitEye(15, 30, 3, [0, 0, 0]), el = 15 * Math.PI / 180, az = 30 * Math.PI / 180;
  closeAll(e, [3 * Math.cos(el) * Math.sin(az), 3 * Math.sin(el), 3 * Math.cos(el) * Math.cos(az)], 1e-12);
});

test("lookAtC2W() has orthonormal axes, looks down -Z at the target, keeps +Y up", () => {
  const eye = [1, 2, 3], m = V.lookAtC2W(eye, [0, 0, 0], [0, 1, 0]), r = V.mat4.rows(m);
  const col = (c) => [r[0][c], r[1][c], r[2][c]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) close(dot(col(a), col(b)), a === b ? 1 : 0, 1e-12);
  closeAll(col(3), eye);
  const n = Math.hypot(...eye);
  closeAll(col(2), eye.map((x) => x / n), 1e-12);  // camera +Z points from the target to the eye
  assert.ok(col(1)[1] > 0);
  assert.ok(Math.abs(col(0)[1]) < 1e-12);  // right vector is horizontal
  const straightDown = V.mat4.rows(V.lookAtC2W([0, 5, 0], [0, 0, 0], [0, 1, 0]));
  assert.ok(straightDown.flat().every(Number.isFinite));
});

test("mat4.invert() inverts, and refuses singular matrices", () => {
  const m = V.mat4.multiply(V.mat4.fromTRS([1, -2, 3], [0.1, 0.7, -0.2, 0.68], [2, 0.5, 3]), V.perspective(40, 1.3, 0.1, 50));
  const id = V.mat4.multiply(m, V.mat4.invert(m));
  for (let i = 0; i < 16; i++) close(id[i], i % 5 === 0 ? 1 : 0, 1e-9);
  assert.throws(() => V.mat4.invert(new Float64Array(16)), /singular/);
});

test("parseGLB() reads interleaved, normalized and uint16 data and applies node transforms", () => {
  const g = V.parseGLB(quadGLB());
  assert.equal(g.triangles, 2); assert.equal(g.vertices, 4);
  const p = g.primitives[0];
  closeAll(Array.from(p.positions), [1, 2, 3, 3, 2, 3, 3, 4, 3, 1, 4, 3]);
  closeAll(Array.from(p.uvs), [0, 1, 1, 1, 1, 0, 0, 0], 1e-7);
  assert.deepEqual(Array.from(p.indices), [0, 1, 2, 0, 2, 3]);
  for (let i = 0; i < 4; i++) closeAll(Array.from(p.normals.subarray(3 * i, 3 * i + 3)), [0, 0, 1], 1e-6);  // computed
  closeAll(g.bounds.min, [1, 2, 3]); closeAll(g.bounds.max, [3, 4, 3]);
  const s = V.boundingSphere(g);
  closeAll(s.center, [2, 3, 3]); close(s.radius, Math.SQRT2, 1e-6);
  assert.equal(p.material.texture, null);
  closeAll(p.material.baseColorFactor, [1, 1, 1, 1]);
});

test("parseGLB() transforms normals with the inverse transpose (non-uniform scale)", () => {
  const pos = bytesOf(new Float32Array([0, 0, 0, 1, 0, 0, 0, 1, 0]));
  const nrm = bytesOf(new Float32Array([1, 1, 0, 1, 1, 0, 1, 1, 0].map((x) => x / Math.SQRT2)));
  const glb = makeGLB((off) => ({
    asset: { version: "2.0" }, scenes: [{ nodes: [0] }], nodes: [{ mesh: 0, scale: [2, 1, 1] }],
    meshes: [{ primitives: [{ attributes: { POSITION: 0, NORMAL: 1 } }] }], buffers: [{ byteLength: 72 }],
    bufferViews: [{ buffer: 0, byteOffset: off[0], byteLength: 36 }, { buffer: 0, byteOffset: off[1], byteLength: 36 }],
    accessors: [{ bufferView: 0, componentType: 5126, count: 3, type: "VEC3" },
                { bufferView: 1, componentType: 5126, count: 3, type: "VEC3" }],
  }), [pos, nrm]);
  const p = V.parseGLB(glb).primitives[0];
  const n = Math.hypot(0.5, 1);
  closeAll(Array.from(p.normals.subarray(0, 3)), [0.5 / n, 1 / n, 0], 1e-6);
  assert.deepEqual(Array.from(p.indices), [0, 1, 2]);  // no indices: sequential
});

test("parseGLB() applies a node matrix (column-major) and nested parents", () => {
  const m = [0, 0, -1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 5, 0, 0, 1];  // rotate 90 degrees about +Y, then x += 5
  const g = V.parseGLB(quadGLB({ nodes: [{ matrix: m, children: [1] }, { mesh: 0, translation: [0, 0, 1] }] }));
  // local (1, 0, 0) -> child (1, 0, 1) -> rotated (1, 0, -1) -> translated (6, 0, -1)
  closeAll(Array.from(g.primitives[0].positions.subarray(3, 6)), [6, 0, -1], 1e-6);
  closeAll(Array.from(g.primitives[0].normals.subarray(0, 3)), [1, 0, 0], 1e-6);  // +Z normal rotated to +X
});

test("parseGLB() finds the embedded baseColorTexture image and its sampler", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);
  const glb = quadGLB({
    materials: [{ pbrMetallicRoughness: { baseColorFactor: [1, 0.5, 1, 1], baseColorTexture: { index: 0 } } }],
    textures: [{ source: 0, sampler: 0 }], samplers: [{ magFilter: 9728, wrapS: 33071 }],
    images: [{ uri: "data:image/png;base64," + Buffer.from(png).toString("base64") }],
    meshes: [{ primitives: [{ attributes: { POSITION: 0, TEXCOORD_0: 1 }, indices: 2, material: 0 }] }],
  });
  const t = V.parseGLB(glb).primitives[0].material;
  assert.equal(t.texture.mimeType, "image/png");
  assert.deepEqual(Array.from(t.texture.bytes), Array.from(png));
  assert.equal(t.texture.sampler.magFilter, 9728); assert.equal(t.texture.sampler.wrapS, 33071);
  assert.equal(t.texture.sampler.wrapT, 10497); assert.equal(t.texture.sampler.minFilter, 9987);
  closeAll(t.baseColorFactor, [1, 0.5, 1, 1]);
});

test("parseGLB() rejects malformed files with a message", () => {
  const good = quadGLB();
  const cases = [
    [good.subarray(0, 10), /shorter than a GLB header/],
    [makeGLB({ asset: { version: "2.0" } }, [], { magic: 0x12345678 }), /does not start with 'glTF'/],
    [makeGLB({ asset: { version: "2.0" } }, [], { version: 1 }), /version 1/],
    [good.subarray(0, good.length - 8), /truncated GLB/],
    [makeGLB("{not json", []), /JSON does not parse/],
    [makeGLB("[1, 2]", []), /not an object/],
    [makeGLB({ asset: { version: "1.0" } }, []), /asset version/],
    [makeGLB({ asset: { version: "2.0" }, meshes: [] }, []), /no triangle mesh/],
    [quadGLB({ extensionsRequired: ["KHR_draco_mesh_compression"] }), /KHR_draco_mesh_compression/],
    [quadGLB({ accessors: [{ bufferView: 0, componentType: 5126, count: 400, type: "VEC3" }, { bufferView: 0, componentType: 5121, count: 4, type: "VEC2" }, { bufferView: 1, componentType: 5123, count: 6, type: "SCALAR" }] }), /runs past its bufferView/],
    [quadGLB({ buffers: [{ byteLength: 76, uri: "mesh.bin" }] }), /external file/],
    [quadGLB({ bufferViews: [{ buffer: 0, byteOffset: 0, byteLength: 4096 }] }), /runs past its buffer|does not exist/],
    [quadGLB({ meshes: [{ primitives: [{ attributes: { POSITION: 7 } }] }] }), /accessor 7 does not exist/],
  ];
  for (const [data, re] of cases) assert.throws(() => V.parseGLB(data), (e) => e instanceof V.GLBError && re.test(e.message), String(re));
  // an index past the vertex count
  const ib = bytesOf(new Uint16Array([0, 1, 9]));
  const pos = bytesOf(new Float32Array(9));
  const bad = makeGLB((off) => ({
    asset: { version: "2.0" }, meshes: [{ primitives: [{ attributes: { POSITION: 0 }, indices: 1 }] }],
    buffers: [{ byteLength: 44 }], bufferViews: [{ buffer: 0, byteOffset: off[0], byteLength: 36 }, { buffer: 0, byteOffset: off[1], byteLength: 6 }],
    accessors: [{ bufferView: 0, componentType: 5126, count: 3, type: "VEC3" }, { bufferView: 1, componentType: 5123, count: 3, type: "SCALAR" }],
  }), [pos, ib]);
  assert.throws(() => V.parseGLB(bad), /index 9 >= vertex count 3/);
});

test("edgeIndices() lists each undirected edge once", () => {
  const e = V.edgeIndices(new Uint32Array([0, 1, 2, 0, 2, 3]));
  assert.equal(e.length / 2, 5);
  const keys = new Set();
  for (let i = 0; i < e.length; i += 2) keys.add(`${Math.min(e[i], e[i + 1])}-${Math.max(e[i], e[i + 1])}`);
  assert.equal(keys.size, 5);
});

test("fitCamera() frames the bounding sphere; orbit/zoom stay in range", () => {
  const c = V.fitCamera({ fov_y: 40, elevation: 10 }, { center: [1, 0, 0], radius: 2 });
  close(c.distance, 1.15 * 2 / Math.sin(20 * Math.PI / 180), 1e-12);
  closeAll(c.target, [1, 0, 0]); assert.equal(c.elevation, 10); assert.equal(c.azimuth, 0);
  const explicit = V.fitCamera({ distance: 3, target: [0, 0, 0], azimuth: 30, elevation: 15, fov_y: 45 }, { center: [5, 5, 5], radius: 1 });
  assert.deepEqual([explicit.distance, explicit.azimuth, explicit.elevation, explicit.fovY], [3, 30, 15, 45]);
  closeAll(explicit.target, [0, 0, 0]);
  const cam = Object.assign({}, c, { target: c.target.slice() });
  V.orbit(cam, 100, -1000, 0.5);
  close(cam.azimuth, -50); close(cam.elevation, -89);
  V.orbit(cam, -400, 0, 0.5);
  assert.ok(cam.azimuth > -180 && cam.azimuth <= 180); close(cam.azimuth, 150);
  V.zoom(cam, 1e6, c); close(cam.distance, c.distance * 20);
  V.zoom(cam, -1e6, c); close(cam.distance, c.distance * 0.05);
  const before = cam.target.slice();
  V.pan(cam, 10, 0, 100);
  assert.ok(Math.hypot(cam.target[0] - before[0], cam.target[1] - before[1], cam.target[2] - before[2]) > 0);
});

test("a GLB written by csdkit's exporter parses (fixture from pytest)", { skip: !process.env.CSDKIT_GLB_FIXTURE }, () => {
  const expect = JSON.parse(process.env.CSDKIT_GLB_EXPECT);
  const g = V.parseGLB(fs.readFileSync(process.env.CSDKIT_GLB_FIXTURE));
  assert.equal(g.triangles, expect.triangles);
  assert.equal(g.vertices, expect.vertices);
  const p = g.primitives[0];
  assert.ok(p.uvs && p.uvs.length === 2 * expect.vertices);
  assert.equal(p.material.texture.mimeType, "image/png");
  assert.deepEqual(Array.from(p.material.texture.bytes.subarray(0, 4)), [0x89, 0x50, 0x4e, 0x47]);
  closeAll(g.bounds.min, expect.min, 1e-6); closeAll(g.bounds.max, expect.max, 1e-6);
  for (let i = 0; i < p.normals.length; i += 3) close(Math.hypot(p.normals[i], p.normals[i + 1], p.normals[i + 2]), 1, 1e-5);
});
