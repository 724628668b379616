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
  await c.start({ ...opts, transform: withKey, display: withKey ? 'demo-with-key' : 'demo-no-key' });
  const out = document.getElementById(`${id}-stats`);
  setInterval(async () => {
    const s = await c.stats();
    window.demoStats ??= {};
    window.demoStats[id] = s;
    out.textContent = `video frames received ${s.video.framesReceived}, decoded ${s.video.framesDecoded}, shown ${s.presentedFrames}`
      + (s.worker ? `\nopened ${s.worker.decrypted.video} video / ${s.worker.decrypted.audio} audio frames, failures ${s.worker.decryptFailures.video}` : '\nno key: frames go to the decoder as they arrive');
  }, 1000);
}

window.demoReady = Promise.all([pane('key', true), pane('nokey', false)]);
