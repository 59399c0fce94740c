// The topology page: berthd draws the picture (GET /topology?format=svg)
// and describes it (format=json); this script shows both, redraws when
// /events reports a network or container change, and shows the details of
// what is clicked. It builds its DOM from text only: names come from users.
'use strict';

const picture = document.getElementById('picture');
const detail = document.getElementById('detail');
const detailTitle = document.getElementById('detail-title');
const detailBody = document.getElementById('detail-body');
const statusText = document.getElementById('status');
const summaryText = document.getElementById('summary');
const fit = document.getElementById('fit');

let model = null;
let selected = null; // {kind, id} of what the detail panel shows
let loading = false;
let again = false; // a change was reported while the picture loaded

function setStatus(state, text) {
  statusText.dataset.state = state;
  statusText.textContent = text;
}

async function fetchOK(url, parse) {
  const res = await fetch(url, {cache: 'no-store'});
  if (!res.ok) {
    let message = res.status + ' ' + res.statusText;
    try {
      message = (await res.json()).message || message;
    } catch (e) {
      // Not berthd's JSON error: the status says it.
    }
    throw new Error(message);
  }
  return parse(res);
}

async function load() {
  const [json, svg] = await Promise.all([
    fetchOK('/topology?format=json', (r) => r.json()),
    fetchOK('/topology?format=svg', (r) => r.text()),
  ]);
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  const root = doc.documentElement;
  if (root.namespaceURI !== 'http://www.w3.org/2000/svg' || root.localName !== 'svg') {
    throw new Error('berthd sent no SVG picture');
  }
  model = json;
  picture.replaceChildren(document.importNode(root, true));
  const host = model.Hosts.find((h) => h.Local);
  document.title = 'berth · ' + (host ? host.Name : 'networks');
  summaryText.textContent = count(model.Networks.length, 'network') + ' · ' +
    count(model.Containers.filter((c) => c.Kind === 'container').length, 'container');
  if (selected) {
    show(selected.kind, selected.id);
  }
}

function count(n, what) {
  return n + ' ' + what + (n === 1 ? '' : 's');
}

// refresh redraws, once at a time: changes reported while a redraw runs
// are taken by one more after it.
function refresh() {
  if (loading) {
    again = true;
    return;
  }
  loading = true;
  load().catch((err) => {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = 'Cannot draw the picture: ' + err.message;
    picture.replaceChildren(p);
  }).finally(() => {
    loading = false;
    if (again) {
      again = false;
      refresh();
    }
  });
}

// follow reads berthd's event stream (one JSON message a line) and redraws
// on each network or container event; when the stream breaks it opens it
// again, waiting longer each time, up to 10 s.
async function follow() {
  const filters = encodeURIComponent(JSON.stringify({type: {network: true, container: true}}));
  let wait = 500;
  for (;;) {
    try {
      const res = await fetch('/events?filters=' + filters, {cache: 'no-store'});
      if (!res.ok) {
        throw new Error(res.status + ' ' + res.statusText);
      }
      setStatus('live', 'live');
      wait = 500;
      refresh(); // what changed while no stream was open
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let pending = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) {
          break;
        }
        pending += decoder.decode(value, {stream: true});
        const lines = pending.split('\n');
        pending = lines.pop();
        if (lines.some((l) => l.trim() !== '')) {
          refresh();
        }
      }
      setStatus('connecting', 'berthd ended the event stream; reconnecting…');
    } catch (err) {
      setStatus('error', 'no events from berthd (' + err.message + '); retrying…');
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 10000);
  }
}

function short(id) {
  return id.length > 12 ? id.slice(0, 12) : id;
}

function networkName(id) {
  const n = model.Networks.find((x) => x.ID === id);
  return n ? n.Name : short(id);
}

// row adds a term and its values to the detail panel; a value is text, or
// {text, kind, id} for a link to another thing of the picture, or
// {text, warn: true}.
function row(term, ...values) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  values.forEach((v, i) => {
    if (i > 0) {
      dd.append(document.createElement('br'));
    }
    if (typeof v === 'string') {
      dd.append(v);
    } else if (v.kind) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'ref';
      b.textContent = v.text;
      b.addEventListener('click', () => select(v.kind, v.id));
      dd.append(b);
    } else {
      const s = document.createElement('span');
      s.className = v.warn ? 'warn' : '';
      s.textContent = v.text;
      dd.append(s);
    }
  });
  detailBody.append(dt, dd);
}

function pairs(map) {
  return Object.keys(map || {}).sort().map((k) => k + '=' + map[k]);
}

function showNetwork(n) {
  detailTitle.textContent = 'network ' + n.Name;
  row('ID', short(n.ID));
  row('driver', n.Driver + (n.Scope ? ' (' + n.Scope + ')' : ''));
  if (n.Subnets && n.Subnets.length) {
    row('subnets', ...n.Subnets.map((s) => s.Subnet + (s.Gateway ? ' gw ' + s.Gateway : '')));
  }
  row('IPv6', n.IPv6 ? 'yes' : 'no');
  row('internal', n.Internal ? {text: 'yes: nothing in or out', warn: true} : 'no');
  row('icc', n.ICC ? 'on: its containers reach each other' : {text: 'off: its containers cannot reach each other', warn: true});
  const members = model.Containers.flatMap((c) => (c.Endpoints || [])
    .filter((e) => e.Network === n.ID)
    .map((e) => ({text: c.Name + (e.IPv4 ? ' ' + e.IPv4 : ''), kind: 'container', id: c.ID})));
  row('attached', ...(members.length ? members : ['nothing']));
  const hosts = model.Hosts.filter((h) => (h.Networks || []).includes(n.ID));
  if (hosts.length) {
    row('other hosts', ...hosts.map((h) => h.Name + (h.IP ? ' ' + h.IP : '')));
  }
  if (n.Options) {
    row('options', ...pairs(n.Options));
  }
  if (n.Labels) {
    row('labels', ...pairs(n.Labels));
  }
}

function showContainer(c) {
  detailTitle.textContent = c.Kind + ' ' + c.Name;
  row('ID', short(c.ID));
  if (c.Image) {
    row('image', c.Image);
  }
  row('state', c.State);
  if (c.NetworkMode) {
    row('network mode', c.NetworkMode);
  }
  if (c.SharesWith) {
    const owner = model.Containers.find((x) => x.ID === c.SharesWith);
    row('namespace of', {text: owner ? owner.Name : short(c.SharesWith), kind: 'container', id: c.SharesWith});
  }
  for (const e of c.Endpoints || []) {
    const lines = [];
    if (!e.Live) {
      lines.push({text: 'not attached while ' + c.State, warn: true});
    }
    for (const v of [e.IPv4, e.IPv6, e.MAC]) {
      if (v) {
        lines.push(v);
      }
    }
    if (e.Aliases && e.Aliases.length) {
      lines.push('alias ' + e.Aliases.join(', '));
    }
    row('on', {text: networkName(e.Network), kind: 'network', id: e.Network}, ...lines);
  }
  if (c.Ports && c.Ports.length) {
    const port = (p) => (p.HostIP.includes(':') ? '[' + p.HostIP + ']' : p.HostIP) + ':' + p.HostPort + ' → ' + p.Port + '/' + p.Proto;
    row('published', ...c.Ports.map(port));
  }
  const sharing = model.Containers.filter((x) => x.SharesWith === c.ID);
  if (sharing.length) {
    row('shared by', ...sharing.map((x) => ({text: x.Name, kind: 'container', id: x.ID})));
  }
}

function showHost(h) {
  detailTitle.textContent = 'host ' + h.Name;
  if (h.IP) {
    row('address', h.IP);
  }
  row('this host', h.Local ? 'yes' : 'no');
  if (h.Networks && h.Networks.length) {
    row('shares', ...h.Networks.map((id) => ({text: networkName(id), kind: 'network', id: id})));
  }
}

// show fills the detail panel with what the model says of a thing.
function show(kind, id) {
  detailBody.replaceChildren();
  let found;
  if (kind === 'network') {
    found = model.Networks.find((n) => n.ID === id);
    found && showNetwork(found);
  } else if (kind === 'container') {
    found = model.Containers.find((c) => c.ID === id);
    found && showContainer(found);
  } else {
    found = model.Hosts.find((h) => h.Name === id);
    found && showHost(found);
  }
  if (!found) {
    const dd = document.createElement('dd');
    dd.className = 'gone';
    dd.textContent = 'no longer exists';
    detailBody.append(dd);
  }
  detail.hidden = false;
  for (const el of picture.querySelectorAll('.selected')) {
    el.classList.remove('selected');
  }
  for (const el of picture.querySelectorAll('[data-kind]')) {
    if (el.dataset.kind === kind && (el.dataset.id || el.dataset.name) === id) {
      el.classList.add('selected');
    }
  }
}

function select(kind, id) {
  selected = {kind, id};
  show(kind, id);
}

picture.addEventListener('click', (ev) => {
  const el = ev.target.closest('[data-kind]');
  if (el && model) {
    select(el.dataset.kind, el.dataset.id || el.dataset.name);
  }
});

document.getElementById('close').addEventListener('click', () => {
  selected = null;
  detail.hidden = true;
  for (const el of picture.querySelectorAll('.selected')) {
    el.classList.remove('selected');
  }
});

fit.addEventListener('change', () => picture.classList.toggle('fit', fit.checked));

follow();
