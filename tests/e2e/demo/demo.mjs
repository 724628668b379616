// The demo page: two participant frames subscribed to the room; one with the
// key (from this page's URL fragment, which the browser never sends), one
// without any transform: the ciphertext the router forwards.
const params = new URLSearchParams(location.hash.slice(1));
const opts = { wsUrl: params.get('ws'), room: Number(params.get('room')), publish: false, subscribe: true, codec: params.get('codec') || 'vp8' };
const key = params.get('key');
history.replaceState(null, '', location.pathname); // the key leaves the address bar

async function ready(frame) {
  for (;;) {
    const cw = frame.contentWindow;
    if (cw && cw.cloakroom) return cw.cloakroom;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function pane(id, withKey) {
  const c = await ready(document.getElementById(id));
  if (withKey) await c.setKey(key, 0);
  // Without a key the worker still receives every frame; none opens, and the
  // last one's bytes are what the rubbish view draws.
  await c.start({ ...opts, transform: true, display: withKey ? 'demo-with-key' : 'demo-no-key' });
  if (!withKey) drawRubbish(c);
  const out = document.getElementById(`${id}-stats`);
  setInterval(async () => {
    const s = await c.stats();
    window.demoStats ??= {};
    window.demoStats[id] = s;
    out.textContent = `video frames to the decoder ${s.video.framesReceived}, decoded ${s.video.framesDecoded}, shown ${s.presentedFrames}`
      + `\nopened ${s.worker.decrypted.video} video / ${s.worker.decrypted.audio} audio frames, failed to open ${s.worker.decryptFailures.video} / ${s.worker.decryptFailures.audio}`;
  }, 1000);
}

window.demoReady = Promise.all([pane('key', true), pane('nokey', false)]);

function drawRubbish(c) {
  const canvas = document.getElementById('rubbish');
  const g = canvas.getContext('2d');
  const img = g.createImageData(canvas.width, canvas.height);
  setInterval(async () => {
    const bytes = await c.cipherSample();
    if (!bytes || !bytes.length) return;
    for (let i = 0, p = 0; p < img.data.length; i++, p += 4) {
      const v = bytes[i % bytes.length];
      img.data[p] = img.data[p + 1] = img.data[p + 2] = v;
      img.data[p + 3] = 255;
    }
    g.putImageData(img, 0, 0);
    window.rubbishFrames = (window.rubbishFrames ?? 0) + 1;
  }, 100);
}
