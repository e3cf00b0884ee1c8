/* csdkit viewer: a small, dependency-free WebGL2 viewer for glTF 2.0 binary (GLB) assets embedded in a
 * page (csdkit reports, `csdkit view`). Part of csdkit (Apache-2.0); design and limits: docs/viewer.md.
 *
 * Page contract (written by csdkit.viewer in Python): a div.csdkit-viewer-group with a JSON data-config
 * ({linked, camera, size, background, ambient, diffuse}) holding one div.csdkit-viewer[data-label] per
 * asset, each with a script element of type application/x-csdkit-glb-base64 holding the GLB; this file
 * is inlined once or more and mounts every group not mounted yet. Nothing is fetched: the GLB is decoded
 * from the page, its embedded PNG/JPEG by the browser (createImageBitmap).
 *
 * Camera conventions are csdkit.render.Cameras': +Y up, azimuth 0 on +Z growing towards +X, elevation
 * towards +Y, the camera looks down its -Z, OpenGL projection. "lit" is MeshRenderer's "lambertian":
 * albedo * (ambient + diffuse * max(0, n.l)) on the sRGB-encoded albedo, light from the orbit target
 * towards the camera, no tone mapping. In node, module.exports is the API without the DOM (unit tests).
 */
(function (root, factory) {
  "use strict";
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
    return;
  }
  const api = root.csdkitViewer || factory();
  root.csdkitViewer = api;
  if (root.document) {
    if (root.document.readyState === "loading") {
      root.document.addEventListener("DOMContentLoaded", function () { api.mountAll(); });
    } else {
      api.mountAll();
    }
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // ---------------------------------------------------------------- small linear algebra (column-major)
  const mat4 = {
    identity() { const m = new Float64Array(16); m[0] = m[5] = m[10] = m[15] = 1; return m; },
    multiply(a, b) {  // a @ b
      const o = new Float64Array(16);
      for (let c = 0; c < 4; c++) {
        for (let r = 0; r < 4; r++) {
          let s = 0;
          for (let k = 0; k < 4; k++) s += a[k * 4 + r] * b[c * 4 + k];
          o[c * 4 + r] = s;
        }
      }
      return o;
    },
    invert(m) {  // Gauss-Jordan with partial pivoting; throws on a singular matrix
      const a = Array.from({ length: 4 }, (_, r) => [0, 1, 2, 3].map((c) => m[c * 4 + r]).concat([0, 1, 2, 3].map((c) => (c === r ? 1 : 0))));
      for (let c = 0; c < 4; c++) {
        let p = c;
        for (let r = c + 1; r < 4; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
        if (!(Math.abs(a[p][c]) > 1e-300)) throw new Error("mat4.invert: singular matrix");
        [a[c], a[p]] = [a[p], a[c]];
        const d = a[c][c];
        for (let k = 0; k < 8; k++) a[c][k] /= d;
        for (let r = 0; r < 4; r++) {
          if (r === c || a[r][c] === 0) continue;
          const f = a[r][c];
          for (let k = 0; k < 8; k++) a[r][k] -= f * a[c][k];
        }
      }
      const inv = new Float64Array(16);
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) inv[c * 4 + r] = a[r][4 + c];
      return inv;
    },
    // Node transform from glTF translation / rotation (quaternion x, y, z, w) / scale.
    fromTRS(t, q, s) {
      const [x, y, z, w] = q, [sx, sy, sz] = s, m = new Float64Array(16);
      m[0] = (1 - 2 * (y * y + z * z)) * sx; m[1] = 2 * (x * y + z * w) * sx; m[2] = 2 * (x * z - y * w) * sx;
      m[4] = 2 * (x * y - z * w) * sy; m[5] = (1 - 2 * (x * x + z * z)) * sy; m[6] = 2 * (y * z + x * w) * sy;
      m[8] = 2 * (x * z + y * w) * sz; m[9] = 2 * (y * z - x * w) * sz; m[10] = (1 - 2 * (x * x + y * y)) * sz;
      m[12] = t[0]; m[13] = t[1]; m[14] = t[2]; m[15] = 1;
      return m;
    },
    // Row-major nested arrays (to compare with numpy/torch matrices in tests).
    rows(m) { return [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => m[c * 4 + r])); },
  };

  function normalize3(v) {
    const n = Math.hypot(v[0], v[1], v[2]);
    return n > 0 ? [v[0] / n, v[1] / n, v[2] / n] : [0, 0, 0];
  }
  function cross3(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }

  // Camera position of csdkit.render.Cameras.from_spherical (degrees).
  function orbitEye(elevation, azimuth, distance, target) {
    const el = elevation * Math.PI / 180, az = azimuth * Math.PI / 180;
    return [target[0] + distance * Math.cos(el) * Math.sin(az), target[1] + distance * Math.sin(el),
            target[2] + distance * Math.cos(el) * Math.cos(az)];
  }

  // csdkit.render.cameras.look_at_c2w: columns right, up, -forward, eye.
  function lookAtC2W(eye, target, up) {
    const f = normalize3([target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]]);
    let r = cross3(f, up);
    if (Math.hypot(r[0], r[1], r[2]) < 1e-6) r = cross3(f, [0, 0, 1]);
    r = normalize3(r);
    const u = cross3(r, f), m = new Float64Array(16);
    m.set([r[0], r[1], r[2], 0, u[0], u[1], u[2], 0, -f[0], -f[1], -f[2], 0, eye[0], eye[1], eye[2], 1]);
    return m;
  }

  // csdkit.render.Cameras.proj: OpenGL perspective, fov_y in degrees, aspect = width / height.
  function perspective(fovY, aspect, near, far) {
    const f = 1 / Math.tan(fovY * Math.PI / 360), m = new Float64Array(16);
    m[0] = f / aspect; m[5] = f; m[10] = -(far + near) / (far - near); m[11] = -1;
    m[14] = -2 * far * near / (far - near);
    return m;
  }

  // ---------------------------------------------------------------- GLB parsing (glTF 2.0 binary)
  const GLB_MAGIC = 0x46546c67, CHUNK_JSON = 0x4e4f534a, CHUNK_BIN = 0x004e4942;
  const COMPONENTS = { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4, MAT2: 4, MAT3: 9, MAT4: 16 };
  const COMPONENT_TYPES = {  // bytes, DataView getter, normalization divisor
    5120: [1, "getInt8", 127], 5121: [1, "getUint8", 255], 5122: [2, "getInt16", 32767],
    5123: [2, "getUint16", 65535], 5125: [4, "getUint32", 4294967295], 5126: [4, "getFloat32", 0],
  };
  const SUPPORTED_EXTENSIONS = new Set(["KHR_materials_unlit"]);

  class GLBError extends Error {}

  function toUint8(data) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new GLBError("parseGLB: expected an ArrayBuffer or Uint8Array");
  }

  function decodeBase64(text) {
    const clean = String(text).replace(/\s+/g, "");
    if (typeof atob === "function") {
      const bin = atob(clean), out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    return new Uint8Array(Buffer.from(clean, "base64"));  // node
  }

  // Split a GLB into its JSON document and BIN chunk; checks the container, not the content.
  function parseGLBContainer(data) {
    const bytes = toUint8(data);
    if (bytes.byteLength < 20) throw new GLBError(`not a GLB: ${bytes.byteLength} bytes is shorter than a GLB header`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint32(0, true) !== GLB_MAGIC) throw new GLBError("not a GLB: the file does not start with 'glTF'");
    const version = dv.getUint32(4, true);
    if (version !== 2) throw new GLBError(`unsupported GLB version ${version} (only glTF 2.0)`);
    const length = dv.getUint32(8, true);
    if (length > bytes.byteLength || length < 20) {
      throw new GLBError(`truncated GLB: header says ${length} bytes, got ${bytes.byteLength}`);
    }
    let offset = 12, json = null, bin = null;
    while (offset + 8 <= length) {
      const chunkLength = dv.getUint32(offset, true), chunkType = dv.getUint32(offset + 4, true);
      const start = offset + 8, end = start + chunkLength;
      if (end > length) throw new GLBError(`truncated GLB: a chunk of ${chunkLength} bytes runs past the end`);
      const chunk = bytes.subarray(start, end);
      if (json === null) {
        if (chunkType !== CHUNK_JSON) throw new GLBError("malformed GLB: the first chunk is not JSON");
        let text = new TextDecoder("utf-8").decode(chunk);
        text = text.replace(/[\s\u0000]+$/, "");
        try { json = JSON.parse(text); } catch (e) { throw new GLBError(`malformed GLB: its JSON does not parse (${e.message})`); }
        if (json === null || typeof json !== "object" || Array.isArray(json)) throw new GLBError("malformed GLB: its JSON is not an object");
      } else if (chunkType === CHUNK_BIN && bin === null) {
        bin = chunk;
      }
      offset = end + ((4 - (chunkLength % 4)) % 4);
    }
    if (json === null) throw new GLBError("malformed GLB: no JSON chunk");
    const asset = json.asset || {};
    if (typeof asset.version !== "string" || asset.version.split(".")[0] !== "2") {
      throw new GLBError(`unsupported glTF asset version ${JSON.stringify(asset.version)} (need 2.x)`);
    }
    return { json, bin };
  }

  function bufferBytes(doc, bin, index) {
    const buf = (doc.buffers || [])[index];
    if (!buf) throw new GLBError(`malformed glTF: buffer ${index} does not exist`);
    if (buf.uri === undefined) {
      if (index !== 0 || bin === null) throw new GLBError(`malformed glTF: buffer ${index} has no uri and there is no BIN chunk`);
      if (bin.byteLength < (buf.byteLength || 0)) throw new GLBError(`truncated GLB: buffer 0 needs ${buf.byteLength} bytes, BIN chunk has ${bin.byteLength}`);
      return bin;
    }
    const m = /^data:[^;,]*;base64,(.*)$/s.exec(buf.uri);
    if (!m) throw new GLBError(`buffer ${index} refers to an external file (${String(buf.uri).slice(0, 60)}); the viewer reads self-contained GLB only`);
    return decodeBase64(m[1]);
  }

  function viewBytes(doc, bin, index) {
    const view = (doc.bufferViews || [])[index];
    if (!view) throw new GLBError(`malformed glTF: bufferView ${index} does not exist`);
    const buf = bufferBytes(doc, bin, view.buffer || 0);
    const off = view.byteOffset || 0, len = view.byteLength;
    if (!(len >= 0) || off + len > buf.byteLength) throw new GLBError(`malformed glTF: bufferView ${index} (${off}+${len}) runs past its buffer (${buf.byteLength} bytes)`);
    return { bytes: buf.subarray(off, off + len), stride: view.byteStride || 0 };
  }

  // Accessor -> Float32Array (normalized integers mapped to [0, 1] / [-1, 1]) or, with asIndex, Uint32Array.
  function readAccessor(doc, bin, index, asIndex) {
    const acc = (doc.accessors || [])[index];
    if (!acc) throw new GLBError(`malformed glTF: accessor ${index} does not exist`);
    const n = COMPONENTS[acc.type], ct = COMPONENT_TYPES[acc.componentType];
    if (!n || !ct) throw new GLBError(`malformed glTF: accessor ${index} has type ${acc.type} / componentType ${acc.componentType}`);
    if (acc.sparse) throw new GLBError(`accessor ${index} is sparse; the viewer does not read sparse accessors`);
    const count = acc.count, out = asIndex ? new Uint32Array(count * n) : new Float32Array(count * n);
    if (!(Number.isInteger(count) && count >= 0)) throw new GLBError(`malformed glTF: accessor ${index} count ${count}`);
    if (acc.bufferView === undefined) return out;  // all zeros, as the spec says
    const { bytes, stride } = viewBytes(doc, bin, acc.bufferView);
    const elem = ct[0] * n, step = stride || elem, base = acc.byteOffset || 0;
    if (count > 0 && base + step * (count - 1) + elem > bytes.byteLength) {
      throw new GLBError(`malformed glTF: accessor ${index} (${count} x ${acc.type}) runs past its bufferView (${bytes.byteLength} bytes)`);
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const get = dv[ct[1]].bind(dv), div = acc.normalized && !asIndex ? ct[2] : 0;
    for (let i = 0; i < count; i++) {
      const o = base + i * step;
      for (let k = 0; k < n; k++) {
        let v = get(o + k * ct[0], true);
        if (div) v = Math.max(v / div, -1);
        out[i * n + k] = v;
      }
    }
    return out;
  }

  function nodeMatrix(node) {
    if (Array.isArray(node.matrix) && node.matrix.length === 16) return Float64Array.from(node.matrix);
    return mat4.fromTRS(node.translation || [0, 0, 0], node.rotation || [0, 0, 0, 1], node.scale || [1, 1, 1]);
  }

  // (mesh index, world matrix) of every mesh instance in the default scene (or every mesh, if none).
  function meshInstances(doc) {
    const nodes = doc.nodes || [], out = [], scenes = doc.scenes || [];
    const scene = scenes[doc.scene === undefined ? 0 : doc.scene];
    if (!scene) return (doc.meshes || []).map((_, i) => [i, mat4.identity()]);
    const visit = (idx, parent, depth) => {
      const node = nodes[idx];
      if (!node || depth > 64) throw new GLBError(`malformed glTF: node ${idx} does not exist or nodes nest too deep`);
      const m = mat4.multiply(parent, nodeMatrix(node));
      if (node.mesh !== undefined) out.push([node.mesh, m]);
      for (const c of node.children || []) visit(c, m, depth + 1);
    };
    for (const idx of scene.nodes || []) visit(idx, mat4.identity(), 0);
    return out;
  }

  function smoothNormals(pos, idx) {
    const nrm = new Float32Array(pos.length);
    for (let t = 0; t < idx.length; t += 3) {
      const a = idx[t] * 3, b = idx[t + 1] * 3, c = idx[t + 2] * 3;
      const e1 = [pos[b] - pos[a], pos[b + 1] - pos[a + 1], pos[b + 2] - pos[a + 2]];
      const e2 = [pos[c] - pos[a], pos[c + 1] - pos[a + 1], pos[c + 2] - pos[a + 2]];
      const f = cross3(e1, e2);  // length = 2 x area: area-weighted, like csdkit's Mesh.vertex_normals
      for (const v of [a, b, c]) { nrm[v] += f[0]; nrm[v + 1] += f[1]; nrm[v + 2] += f[2]; }
    }
    for (let i = 0; i < nrm.length; i += 3) {
      const n = normalize3([nrm[i], nrm[i + 1], nrm[i + 2]]);
      nrm[i] = n[0]; nrm[i + 1] = n[1]; nrm[i + 2] = n[2];
    }
    return nrm;
  }

  function materialOf(doc, bin, index) {
    const mat = (doc.materials || [])[index] || {};
    const pbr = mat.pbrMetallicRoughness || {};
    const out = { name: mat.name || null, baseColorFactor: (pbr.baseColorFactor || [1, 1, 1, 1]).slice(0, 4),
                  texture: null, texCoord: 0, doubleSided: !!mat.doubleSided };
    const ref = pbr.baseColorTexture;
    if (ref && doc.textures && doc.textures[ref.index]) {
      const tex = doc.textures[ref.index], img = (doc.images || [])[tex.source];
      if (!img) throw new GLBError(`malformed glTF: texture ${ref.index} has no image`);
      let bytes, mime = img.mimeType || "";
      if (img.bufferView !== undefined) {
        bytes = viewBytes(doc, bin, img.bufferView).bytes;
      } else {
        const m = /^data:([^;,]*);base64,(.*)$/s.exec(img.uri || "");
        if (!m) throw new GLBError(`image ${tex.source} refers to an external file; the viewer reads self-contained GLB only`);
        bytes = decodeBase64(m[2]); mime = mime || m[1];
      }
      const sampler = (doc.samplers || [])[tex.sampler] || {};
      out.texture = { image: tex.source, bytes, mimeType: mime || "image/png",
                      sampler: { magFilter: sampler.magFilter || 9729, minFilter: sampler.minFilter || 9987,
                                 wrapS: sampler.wrapS || 10497, wrapT: sampler.wrapT || 10497 } };
      out.texCoord = ref.texCoord || 0;
    }
    return out;
  }

  /**
   * Parse a GLB into world-space triangle primitives.
   * Returns {primitives: [{positions, normals, uvs|null, colors|null (linear RGBA), indices, material}],
   *          bounds: {min, max}, triangles, vertices, skipped: [reasons], json}.
   * Node transforms are applied (positions and normals); non-triangle primitives are skipped.
   */
  function parseGLB(data) {
    const { json: doc, bin } = parseGLBContainer(data);
    const required = (doc.extensionsRequired || []).filter((e) => !SUPPORTED_EXTENSIONS.has(e));
    if (required.length) throw new GLBError(`the GLB requires extensions the viewer does not read: ${required.join(", ")} (csdkit view re-exports such files)`);
    const prims = [], skipped = [], lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    let triangles = 0, vertices = 0;
    for (const [meshIndex, world] of meshInstances(doc)) {
      const mesh = (doc.meshes || [])[meshIndex];
      if (!mesh) throw new GLBError(`malformed glTF: mesh ${meshIndex} does not exist`);
      const normalMat = mat4.invert(world);  // normals transform with the inverse transpose
      for (const p of mesh.primitives || []) {
        const mode = p.mode === undefined ? 4 : p.mode;
        if (mode !== 4) { skipped.push(`primitive mode ${mode} (only triangles are drawn)`); continue; }
        const attrs = p.attributes || {};
        if (attrs.POSITION === undefined) { skipped.push("a primitive without POSITION"); continue; }
        const local = readAccessor(doc, bin, attrs.POSITION, false), nv = local.length / 3;
        let indices = p.indices !== undefined ? readAccessor(doc, bin, p.indices, true) : Uint32Array.from({ length: nv }, (_, i) => i);
        indices = indices.subarray(0, indices.length - (indices.length % 3));
        for (let i = 0; i < indices.length; i++) {
          if (indices[i] >= nv) throw new GLBError(`malformed glTF: index ${indices[i]} >= vertex count ${nv}`);
        }
        const positions = new Float32Array(local.length);
        for (let i = 0; i < local.length; i += 3) {
          const x = local[i], y = local[i + 1], z = local[i + 2];
          for (let k = 0; k < 3; k++) {
            const v = world[k] * x + world[4 + k] * y + world[8 + k] * z + world[12 + k];
            positions[i + k] = v;
            if (v < lo[k]) lo[k] = v;
            if (v > hi[k]) hi[k] = v;
          }
        }
        let normals;
        if (attrs.NORMAL !== undefined) {
          const ln = readAccessor(doc, bin, attrs.NORMAL, false);
          normals = new Float32Array(ln.length);
          for (let i = 0; i < ln.length; i += 3) {
            const n = normalize3([0, 1, 2].map((k) => normalMat[k * 4] * ln[i] + normalMat[k * 4 + 1] * ln[i + 1] + normalMat[k * 4 + 2] * ln[i + 2]));
            normals[i] = n[0]; normals[i + 1] = n[1]; normals[i + 2] = n[2];
          }
        } else {
          normals = smoothNormals(positions, indices);
        }
        const material = materialOf(doc, bin, p.material);
        const uvKey = `TEXCOORD_${material.texCoord}`;
        const uvs = attrs[uvKey] !== undefined ? readAccessor(doc, bin, attrs[uvKey], false) : null;
        let colors = null;
        if (attrs.COLOR_0 !== undefined) {
          const c = readAccessor(doc, bin, attrs.COLOR_0, false), n = c.length / nv;
          colors = new Float32Array(nv * 4);
          for (let i = 0; i < nv; i++) {
            colors[i * 4] = c[i * n]; colors[i * 4 + 1] = c[i * n + 1]; colors[i * 4 + 2] = c[i * n + 2];
            colors[i * 4 + 3] = n === 4 ? c[i * n + 3] : 1;
          }
        }
        prims.push({ positions, normals, uvs, colors, indices, material });
        triangles += indices.length / 3;
        vertices += nv;
      }
    }
    if (!prims.length) throw new GLBError(`the GLB has no triangle mesh to show${skipped.length ? " (" + skipped.join("; ") + ")" : ""}`);
    return { primitives: prims, bounds: { min: lo, max: hi }, triangles, vertices, skipped, json: doc };
  }

  // Centre of the bounding box and the largest distance of a vertex from it.
  function boundingSphere(parsed) {
    const c = [0, 1, 2].map((k) => (parsed.bounds.min[k] + parsed.bounds.max[k]) / 2);
    let r2 = 0;
    for (const p of parsed.primitives) {
      const v = p.positions;
      for (let i = 0; i < v.length; i += 3) {
        const d = (v[i] - c[0]) ** 2 + (v[i + 1] - c[1]) ** 2 + (v[i + 2] - c[2]) ** 2;
        if (d > r2) r2 = d;
      }
    }
    return { center: c, radius: Math.sqrt(r2) || 1 };
  }

  // Unique undirected edges of a triangle index list, as a line index list.
  function edgeIndices(indices) {
    const seen = new Set(), out = [];
    for (let t = 0; t < indices.length; t += 3) {
      for (let k = 0; k < 3; k++) {
        let a = indices[t + k], b = indices[t + (k + 1) % 3];
        if (a > b) { const s = a; a = b; b = s; }
        const key = a * 4294967296 + b;
        if (!seen.has(key)) { seen.add(key); out.push(a, b); }
      }
    }
    return Uint32Array.from(out);
  }

  // ---------------------------------------------------------------- camera state
  // {elevation, azimuth (degrees), distance, target [3], fovY (degrees)} -> matrices.
  function cameraMatrices(cam, aspect, radius) {
    const eye = orbitEye(cam.elevation, cam.azimuth, cam.distance, cam.target);
    const c2w = lookAtC2W(eye, cam.target, [0, 1, 0]);
    const near = Math.max(cam.distance - 2 * radius, cam.distance * 1e-3), far = cam.distance + 2 * radius;
    const proj = perspective(cam.fovY, aspect, near, far);
    return { eye, c2w, w2c: mat4.invert(c2w), proj, near, far };
  }

  function fitCamera(config, sphere) {
    const c = config || {}, fovY = c.fov_y || 50;
    const target = Array.isArray(c.target) ? c.target.slice(0, 3) : sphere.center.slice();
    let r = sphere.radius;
    if (Array.isArray(c.target)) {  // radius around the given target
      r = sphere.radius + Math.hypot(target[0] - sphere.center[0], target[1] - sphere.center[1], target[2] - sphere.center[2]);
    }
    const margin = c.margin || 1.15;
    const distance = c.distance || margin * r / Math.sin(fovY * Math.PI / 360);
    return { elevation: c.elevation == null ? 15 : c.elevation, azimuth: c.azimuth || 0, distance, target, fovY };
  }

  function orbit(cam, dx, dy, degPerPixel) {
    const s = degPerPixel || 0.5;
    cam.azimuth = ((cam.azimuth - dx * s + 540) % 360) - 180;
    cam.elevation = Math.max(-89, Math.min(89, cam.elevation + dy * s));
  }

  function zoom(cam, deltaY, home) {
    const d = cam.distance * Math.exp(deltaY * 0.0015);
    cam.distance = Math.max(home.distance * 0.05, Math.min(home.distance * 20, d));
  }

  function pan(cam, dx, dy, heightPx) {
    const { c2w } = cameraMatrices(cam, 1, 1);
    const k = 2 * cam.distance * Math.tan(cam.fovY * Math.PI / 360) / heightPx;
    for (let i = 0; i < 3; i++) cam.target[i] += (-dx * c2w[i] + dy * c2w[4 + i]) * k;
  }

  const api = { mat4, orbitEye, lookAtC2W, perspective, parseGLB, parseGLBContainer, readAccessor,
                decodeBase64, boundingSphere, edgeIndices, cameraMatrices, fitCamera, orbit, zoom, pan,
                GLBError, groups: [], version: "1" };

  // ================================================================ browser part
  function installDom(api) {
    const state = { cspViolations: [], pending: [] };
    api.cspViolations = state.cspViolations;
    document.addEventListener("securitypolicyviolation", (e) => {
      state.cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`);
    });
    api.mountAll = function () {
      for (const el of document.querySelectorAll(".csdkit-viewer-group")) {
        if (el.dataset.mounted) continue;
        el.dataset.mounted = "1";
        const group = new Group(el);
        api.groups.push(group);
        state.pending.push(group.ready);
      }
      api.ready = Promise.all(state.pending).then(() => {
        const failed = api.groups.some((g) => g.views.some((v) => v.error));
        document.documentElement.dataset.csdkitViewer = failed ? "error" : "ready";
        return api.groups;
      });
      return api.ready;
    };
    return api;
  }

  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) k === "text" ? (e.textContent = v) : e.setAttribute(k === "className" ? "class" : k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  const VS = `#version 300 es
layout(location=0) in vec3 aPos; layout(location=1) in vec3 aNormal; layout(location=2) in vec2 aUV;
layout(location=3) in vec4 aColor;
uniform mat4 uViewProj; uniform float uDepthBias;
out vec3 vPos; out vec3 vNormal; out vec2 vUV; out vec4 vColor;
void main() {
  vPos = aPos; vNormal = aNormal; vUV = aUV; vColor = aColor;
  gl_Position = uViewProj * vec4(aPos, 1.0);
  gl_Position.z -= uDepthBias * gl_Position.w;  // wireframe edges: drawn just in front of their surface
}`;
  const FS = `#version 300 es
precision highp float;
in vec3 vPos; in vec3 vNormal; in vec2 vUV; in vec4 vColor;
uniform sampler2D uTex; uniform bool uHasTex; uniform bool uManaged; uniform vec4 uFactor;
uniform int uMode; uniform bool uLine; uniform vec3 uEye; uniform vec3 uLight;
uniform float uAmbient; uniform float uDiffuse;
out vec4 outColor;
vec3 toLinear(vec3 c) { return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(0.04045, c)); }
vec3 toSrgb(vec3 c) { c = clamp(c, 0.0, 1.0); return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c)); }
void main() {
  if (uLine) { outColor = vec4(0.08, 0.08, 0.1, 1.0); return; }
  vec3 albedo = uHasTex ? texture(uTex, vUV).rgb : vec3(1.0);
  if (uManaged) albedo = toSrgb((uHasTex ? toLinear(albedo) : vec3(1.0)) * uFactor.rgb * vColor.rgb);
  if (uMode == 2) {
    vec2 q = floor(fract(vUV) * 8.0);
    float c = mod(q.x + q.y, 2.0);
    albedo = mix(vec3(0.15), vec3(0.95), c) * vec3(0.55 + 0.45 * fract(vUV.x), 0.55 + 0.45 * fract(vUV.y), 0.9);
  }
  vec3 n = normalize(vNormal);
  if (dot(n, uEye - vPos) < 0.0) n = -n;
  vec3 rgb = uMode == 1 ? albedo : albedo * (uAmbient + uDiffuse * max(dot(n, uLight), 0.0));
  outColor = vec4(rgb, 1.0);
}`;

  function compile(gl, type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error("shader: " + gl.getShaderInfoLog(s));
    return s;
  }

  class Group {
    constructor(root) {
      this.root = root;
      let cfg = {};
      try { cfg = JSON.parse(root.dataset.config || "{}"); } catch (e) { cfg = {}; }
      this.config = cfg;
      this.linked = cfg.linked !== false;
      this.mode = 0;  // 0 lit, 1 albedo, 2 UV checker
      this.wireframe = false;
      const bar = el("div", { className: "csdkit-viewer-bar" });
      root.insertBefore(bar, root.firstChild);
      this.bar = bar;
      const modes = [["lit", "textured and lit (as csdkit renders it)"], ["albedo", "bare albedo: the texture, unlit"],
                     ["uv checker", "a checker in UV space: stretching, seams"]];
      this.modeButtons = modes.map(([name, tip], i) => {
        const b = el("button", { type: "button", title: tip, text: name, "aria-pressed": i === 0 ? "true" : "false" }, bar);
        b.addEventListener("click", () => this.setMode(i));
        return b;
      });
      this.wireButton = el("button", { type: "button", title: "triangle edges over the surface", text: "wireframe", "aria-pressed": "false" }, bar);
      this.wireButton.addEventListener("click", () => this.setWireframe(!this.wireframe));
      const reset = el("button", { type: "button", title: "back to the first view (or double-click)", text: "reset" }, bar);
      reset.addEventListener("click", () => this.reset());
      const views = Array.from(root.querySelectorAll(".csdkit-viewer"));
      if (views.length > 1) {
        const lab = el("label", { title: "move all views together" }, bar);
        this.linkBox = el("input", { type: "checkbox" }, lab);
        this.linkBox.checked = this.linked;
        lab.appendChild(document.createTextNode(" linked cameras"));
        this.linkBox.addEventListener("change", () => this.setLinked(this.linkBox.checked));
      }
      el("span", { className: "csdkit-viewer-help", text: "drag: orbit · shift/right-drag: pan · wheel: zoom · double-click: reset" }, bar);
      this.views = views.map((v) => new View(this, v));
      this.ready = Promise.all(this.views.map((v) => v.ready)).then(() => {
        this.home();
        for (const v of this.views) if (v.gl && !v.error) v.draw();  // "ready" means drawn
        return this;
      });
    }
    home() {  // starting camera: one fit of the union of all views (linked) or one per view
      const ok = this.views.filter((v) => v.sphere && !v.error);
      if (!ok.length) return;
      const union = unionSphere(ok.map((v) => v.sphere));
      for (const v of ok) {
        v.homeCamera = fitCamera(this.config.camera, this.linked ? union : v.sphere);
        v.camera = null;
      }
      this.shared = Object.assign({}, ok[0].homeCamera, { target: ok[0].homeCamera.target.slice() });
      for (const v of ok) v.camera = this.linked ? this.shared : copyCam(v.homeCamera);
    }
    reset() { this.home(); this.drawAll(); }
    setMode(i) {
      this.mode = i;
      this.modeButtons.forEach((b, k) => b.setAttribute("aria-pressed", k === i ? "true" : "false"));
      this.drawAll();
    }
    setWireframe(on) {
      this.wireframe = !!on;
      this.wireButton.setAttribute("aria-pressed", on ? "true" : "false");
      this.drawAll();
    }
    setLinked(on) {
      this.linked = !!on;
      if (this.linkBox) this.linkBox.checked = this.linked;
      const first = this.views.find((v) => v.camera);
      if (!first) return;
      this.shared = copyCam(first.camera);
      for (const v of this.views) if (v.camera) v.camera = this.linked ? this.shared : copyCam(first.camera);
      this.drawAll();
    }
    changed(view) {
      if (this.linked) this.drawAll(); else view.requestDraw();
    }
    drawAll() { for (const v of this.views) v.requestDraw(); }
  }

  function copyCam(c) { return Object.assign({}, c, { target: c.target.slice() }); }
  function unionSphere(spheres) {
    const lo = [0, 1, 2].map((k) => Math.min(...spheres.map((s) => s.center[k] - s.radius)));
    const hi = [0, 1, 2].map((k) => Math.max(...spheres.map((s) => s.center[k] + s.radius)));
    const center = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2);
    const radius = Math.max(...spheres.map((s) => s.radius + Math.hypot(s.center[0] - center[0], s.center[1] - center[1], s.center[2] - center[2])));
    return { center, radius };
  }

  class View {
    constructor(group, root) {
      this.group = group;
      this.root = root;
      this.label = root.dataset.label || "";
      this.error = null;
      this.frames = 0;
      this.info = null;
      const size = group.config.size || [480, 480];
      const fig = el("figure", { className: "csdkit-viewer-figure" }, root);
      this.canvas = el("canvas", { width: String(size[0]), height: String(size[1]), tabindex: "0" }, fig);
      this.canvas.style.width = size[0] + "px";
      this.canvas.style.height = size[1] + "px";
      this.caption = el("figcaption", { text: this.label }, fig);
      this.ready = this.load().catch((e) => this.fail(e));
    }
    fail(e) {
      this.error = (e && e.message) || String(e);
      const msg = el("div", { className: "csdkit-viewer-error", text: `cannot show ${this.label || "this asset"}: ${this.error}` });
      this.canvas.replaceWith(msg);
    }
    async load() {
      const data = this.root.querySelector('script[type="application/x-csdkit-glb-base64"]');
      if (!data) throw new Error("no embedded GLB in this viewer");
      const parsed = parseGLB(decodeBase64(data.textContent));
      this.parsed = parsed;
      this.sphere = boundingSphere(parsed);
      const dpr = window.devicePixelRatio || 1;
      const [w, h] = this.group.config.size || [480, 480];
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      const gl = this.canvas.getContext("webgl2", { antialias: true, preserveDrawingBuffer: true, premultipliedAlpha: false });
      if (!gl) throw new Error("WebGL2 is not available in this browser (the turntable images show the result)");
      this.gl = gl;
      const prog = gl.createProgram();
      gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
      gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
      gl.linkProgram(prog);
      if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error("shader link: " + gl.getProgramInfoLog(prog));
      this.prog = prog;
      this.u = {};
      for (const name of ["uViewProj", "uDepthBias", "uTex", "uHasTex", "uManaged", "uFactor", "uMode", "uLine", "uEye", "uLight", "uAmbient", "uDiffuse"]) {
        this.u[name] = gl.getUniformLocation(prog, name);
      }
      const textures = new Map();
      this.prims = [];
      for (const p of parsed.primitives) {
        const buf = (arr, target) => {
          const b = gl.createBuffer();
          gl.bindBuffer(target, b);
          gl.bufferData(target, arr, gl.STATIC_DRAW);
          return b;
        };
        const A = gl.ARRAY_BUFFER;
        const buffers = [[0, buf(p.positions, A), 3], [1, buf(p.normals, A), 3],
                         [2, p.uvs ? buf(p.uvs, A) : null, 2], [3, p.colors ? buf(p.colors, A) : null, 4]];
        const vao = this.makeVAO(buffers, buf(p.indices, gl.ELEMENT_ARRAY_BUFFER));
        let tex = null;
        const t = p.material.texture;
        if (t && p.uvs) {
          if (!textures.has(t.image)) textures.set(t.image, this.uploadImage(t));
          tex = await textures.get(t.image);
        }
        const f = p.material.baseColorFactor;
        const managed = !!p.colors || f.slice(0, 3).some((x) => x !== 1);
        this.prims.push({ vao, count: p.indices.length, tex, texSize: tex ? tex.size : null, factor: f, managed,
                          src: p, buffers, lines: null });
      }
      const tx = parsed.primitives.map((p) => p.material.texture).filter(Boolean)[0];
      this.info = { triangles: parsed.triangles, vertices: parsed.vertices, skipped: parsed.skipped,
                    texture: (this.prims.find((p) => p.tex) || {}).texSize || null,
                    textureMime: tx ? tx.mimeType : null };
      this.caption.textContent = `${this.label}${this.label ? " · " : ""}${parsed.triangles} triangles` +
        (this.info.texture ? ` · texture ${this.info.texture[0]}x${this.info.texture[1]}` : " · no texture");
      this.bindEvents();
    }
    makeVAO(buffers, indexBuffer) {  // one VAO per index buffer (the element binding is VAO state)
      const gl = this.gl, vao = gl.createVertexArray();
      gl.bindVertexArray(vao);
      for (const [loc, b, n] of buffers) {
        if (!b) { gl.disableVertexAttribArray(loc); continue; }
        gl.bindBuffer(gl.ARRAY_BUFFER, b);
        gl.enableVertexAttribArray(loc);
        gl.vertexAttribPointer(loc, n, gl.FLOAT, false, 0, 0);
      }
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, indexBuffer);
      gl.bindVertexArray(null);
      return vao;
    }
    async uploadImage(t) {
      const gl = this.gl;
      const blob = new Blob([t.bytes], { type: t.mimeType });
      let bitmap;
      try {
        // raw texel values: no colour-space conversion, no premultiplication (ImageBitmap uploads ignore the
        // UNPACK_* pixel-store flags, so the decode options are what count)
        bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
      } catch (e) {
        throw new Error(`the browser could not decode the embedded ${t.mimeType} texture (${e.message || e})`);
      }
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      // not flipped: glTF's UV (0, 0) is the top-left texel, and the image's first row is texture row 0
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      const s = t.sampler, mip = s.minFilter >= 9984 && s.minFilter <= 9987;
      if (mip) gl.generateMipmap(gl.TEXTURE_2D);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, s.minFilter);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, s.magFilter);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, s.wrapS);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, s.wrapT);
      tex.size = [bitmap.width, bitmap.height];
      if (bitmap.close) bitmap.close();
      return tex;
    }
    bindEvents() {
      const c = this.canvas;
      let drag = null;
      c.addEventListener("pointerdown", (e) => {
        if (!this.camera) return;
        drag = { x: e.clientX, y: e.clientY, pan: e.button === 2 || e.shiftKey };
        if (c.setPointerCapture) { try { c.setPointerCapture(e.pointerId); } catch (err) { /* synthetic */ } }
        e.preventDefault();
      });
      c.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        drag.x = e.clientX; drag.y = e.clientY;
        if (drag.pan) pan(this.camera, dx, dy, c.clientHeight || 1); else orbit(this.camera, dx, dy, 0.5);
        this.group.changed(this);
      });
      const end = () => { drag = null; };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", end);
      c.addEventListener("wheel", (e) => {
        if (!this.camera) return;
        e.preventDefault();
        zoom(this.camera, e.deltaY * (e.deltaMode === 1 ? 30 : 1), this.homeCamera);
        this.group.changed(this);
      }, { passive: false });
      c.addEventListener("dblclick", () => this.group.reset());
      c.addEventListener("contextmenu", (e) => e.preventDefault());
      c.addEventListener("webglcontextlost", () => this.fail(new Error("the browser dropped this view's WebGL context (too many 3D views open?); reload the page")));
    }
    requestDraw() {
      if (!this.gl || this.error || this.pendingFrame) return;
      this.pendingFrame = requestAnimationFrame(() => { this.pendingFrame = 0; this.draw(); });
    }
    matrices() {  // camera of the current frame, csdkit.render.Cameras conventions (row-major for tests)
      const m = cameraMatrices(this.camera, this.canvas.width / this.canvas.height, this.sphere.radius);
      return { c2w: mat4.rows(m.c2w), proj: mat4.rows(m.proj), eye: m.eye, camera: copyCam(this.camera),
               width: this.canvas.width, height: this.canvas.height };
    }
    draw() {
      const gl = this.gl, cam = this.camera;
      if (!cam) return;
      const cfg = this.group.config;
      const m = cameraMatrices(cam, this.canvas.width / this.canvas.height, this.sphere.radius);
      const vp = Float32Array.from(mat4.multiply(m.proj, m.w2c));
      const bg = cfg.background || [0.6, 0.6, 0.6];
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.clearColor(bg[0], bg[1], bg[2], 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.enable(gl.DEPTH_TEST);
      gl.disable(gl.CULL_FACE);  // csdkit renders both sides (normals turned towards the camera)
      gl.useProgram(this.prog);
      const light = normalize3([m.eye[0] - cam.target[0], m.eye[1] - cam.target[1], m.eye[2] - cam.target[2]]);
      gl.uniformMatrix4fv(this.u.uViewProj, false, vp);
      gl.uniform3fv(this.u.uEye, m.eye);
      gl.uniform3fv(this.u.uLight, light);
      gl.uniform1f(this.u.uAmbient, cfg.ambient === undefined ? 0.5 : cfg.ambient);
      gl.uniform1f(this.u.uDiffuse, cfg.diffuse === undefined ? 0.5 : cfg.diffuse);
      gl.uniform1i(this.u.uMode, this.group.mode);
      gl.uniform1i(this.u.uTex, 0);
      const wire = this.group.wireframe;
      gl.depthFunc(gl.LEQUAL);
      for (const p of this.prims) {
        gl.bindVertexArray(p.vao);
        if (!p.src.uvs) gl.vertexAttrib2f(2, 0, 0);
        if (!p.src.colors) gl.vertexAttrib4f(3, 1, 1, 1, 1);
        gl.activeTexture(gl.TEXTURE0);
        gl.bindTexture(gl.TEXTURE_2D, p.tex);
        gl.uniform1i(this.u.uHasTex, p.tex ? 1 : 0);
        gl.uniform1i(this.u.uManaged, p.managed ? 1 : 0);
        gl.uniform4fv(this.u.uFactor, p.factor);
        gl.uniform1i(this.u.uLine, 0);
        gl.uniform1f(this.u.uDepthBias, 0);
        gl.drawElements(gl.TRIANGLES, p.count, gl.UNSIGNED_INT, 0);
        if (wire) {
          if (!p.lines) {
            const e = edgeIndices(p.src.indices);
            gl.bindVertexArray(null);
            const ib = gl.createBuffer();
            gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ib);
            gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, e, gl.STATIC_DRAW);
            p.lines = { vao: this.makeVAO(p.buffers, ib), count: e.length };
          }
          gl.bindVertexArray(p.lines.vao);
          gl.uniform1i(this.u.uLine, 1);
          // NDC depth over the object spans about [-1, 1] (near/far hug the bounding sphere): 0.002 is a
          // few hundred depth steps, much less than any surface in front of the edge
          gl.uniform1f(this.u.uDepthBias, 0.002);
          gl.drawElements(gl.LINES, p.lines.count, gl.UNSIGNED_INT, 0);
        }
        gl.bindVertexArray(null);
      }
      this.frames++;
      this.canvas.dataset.frames = String(this.frames);
    }
  }
  if (typeof document !== "undefined") installDom(api);
  return api;
});
