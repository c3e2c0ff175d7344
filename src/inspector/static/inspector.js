// The rockvisor inspector page: draws the actor tree, the statecharts and the lifecycle log from the server's
// Server-Sent Events (/events). Plain browser JavaScript, no library, nothing loaded from the network.
;(function () {
  'use strict'

  var model = { state: null, machines: [], log: [], ghosts: {}, selected: {}, tab: 'shard', seenLog: {} }
  var $ = function (id) { return document.getElementById(id) }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';' })
  }
  function num(n) { return Number(n).toLocaleString('en-US') }
  function clock(ms) {
    var d = new Date(ms)
    var p = function (n, w) { return String(n).padStart(w || 2, '0') }
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3)
  }
  function age(ms) { return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s' }
  function size(b) { return b < 1024 ? b + ' B' : b < 1048576 ? (b / 1024).toFixed(1) + ' KiB' : (b / 1048576).toFixed(1) + ' MiB' }

  /** The colour class of a state: serving / busy / bad / off. */
  function tone(state, status) {
    if (status === 'error') return 's-bad'
    var leaf = String(state).split(' + ')[0].split('.').pop()
    if (/failed|crashed/.test(state)) return 's-bad'
    if (/^(serving|ready|up|running|healthy|absent)$/.test(leaf)) return 's-ok'
    if (/^(retiring|closing|closed|readers|primary)$/.test(leaf)) return 's-off'
    return 's-busy'
  }
  function shortState(actor) {
    if (actor.machine === 'shard') return actor.shard ? actor.shard.state : actor.state
    return actor.state.replace(/^ready\./, '')
  }

  // ---- actors, flattened ----------------------------------------------------------------------------------------
  function allActors() {
    var out = []
    var walk = function (node, shard) {
      out.push({ node: node, shard: shard })
      ;(node.children || []).forEach(function (c) { walk(c, node.machine === 'shard' ? node : shard) })
    }
    if (model.state && model.state.tree) walk(model.state.tree, null)
    return out
  }
  function findActor(key) {
    return allActors().filter(function (a) { return a.node.key === key })[0]
  }
  function actorName(a) {
    if (a.node.machine === 'root') return 'root supervisor'
    if (a.node.machine === 'shard') return a.node.shard ? a.node.shard.label : a.node.id
    return a.node.id + ' of ' + (a.shard && a.shard.shard ? a.shard.shard.label : a.shard ? a.shard.id : '?')
  }

  // ---- the tree ---------------------------------------------------------------------------------------------------
  function chip(actor, shardNode) {
    var key = actor.key
    var sel = model.tab === actor.machine && model.selected[actor.machine] === key ? ' selected' : ''
    var view = ''
    if (actor.view) view = 'seq ' + num(actor.view.sequence) + (actor.view.lag > 0 ? ' (−' + num(actor.view.lag) + ')' : '') + ' · ' + age(actor.view.ageMs)
    else if (actor.machine === 'primary' && shardNode.shard) view = 'seq ' + num(shardNode.shard.sequence)
    return '<div class="actor chip ' + tone(actor.state, actor.status) + sel + '" data-key="' + esc(key) + '" data-machine="' + esc(actor.machine) +
      '" data-actor="' + esc(shardNode.id + '/' + actor.id) + '" data-state="' + esc(actor.state) + '" title="' + esc(actor.machine + ': ' + actor.state) + '">' +
      '<span><span class="what">' + esc(actor.id) + '</span> · <span class="st">' + esc(shortState(actor)) + '</span></span><span class="view">' + esc(view) + '</span></div>'
  }
  function ghostChips(shardNode) {
    var now = Date.now()
    var live = {}
    ;(shardNode.children || []).forEach(function (c) { live[c.id] = true })
    // The most recent failures of this shard (at most 4), each shown until 10 s after its replacement was started.
    return Object.keys(model.ghosts).map(function (k) { return model.ghosts[k] }).filter(function (g) {
      return g.shard === shardNode.id && !live[g.actor] && g.until > now
    }).sort(function (a, b) { return b.at - a.at }).slice(0, 4).map(function (g) {
      return '<div class="actor chip ghost s-bad" data-actor="' + esc(g.shard + '/' + g.actor) + '" data-state="failed" title="' + esc(g.detail) + '">' +
        '<span><span class="what">' + esc(g.actor) + '</span> · <span class="st">failed</span></span><span class="view">' + esc(g.note) + '</span></div>'
    }).join('')
  }
  function shardCard(node) {
    var s = node.shard
    var sel = model.tab === 'shard' && model.selected.shard === node.key ? ' selected' : ''
    var bad = s && (s.state === 'failed' || s.pool === 'degraded') ? ' s-bad-card' : ''
    var head = '<div class="shard-head"><span class="name">' + esc(s ? s.label : node.id) + '</span>' +
      '<span class="chip ' + tone(s ? s.state : node.state, node.status) + '" data-role="shard-state">' + esc(s ? s.state : node.state) + '</span>' +
      (s ? '<span class="chip ' + (s.pool === 'healthy' ? 's-ok' : 's-bad') + '" data-role="pool">' + esc(s.pool) + '</span>' : '') + '</div>'
    var nums = s ? '<div class="nums">' +
      '<span>restarts</span><b class="restarts" data-primary="' + s.restarts.primary + '" data-readers="' + s.restarts.readers + '">' + s.restarts.primary + ' / ' + s.restarts.readers + '</b>' +
      '<span>sequence</span><b>' + num(s.sequence) + '</b>' +
      '<span>queued w / r</span><b>' + s.queues.pendingWrites + ' / ' + s.queues.pendingReads + '</b>' +
      '<span>in flight</span><b>' + s.queues.inflight + '</b>' +
      '<span>flushes</span><b data-role="flushes">' + num(s.flushes.done) +
      (s.flushes.running ? ' (one running' + (s.flushes.writesWaiting > 0 ? ', ' + s.flushes.writesWaiting + ' writes wait' : '') + ')' : '') + '</b>' +
      '<span title="partitions whose writes look up only the msgIds they may hold">msgId filters</span><b data-role="msgid-filters">' + num(s.msgIdFilters.partitions) +
      (s.msgIdFilters.learning ? ' (' + s.msgIdFilters.learning + ' learning)' : '') + (s.msgIdFilters.refused ? ', ' + s.msgIdFilters.refused + ' without' : '') +
      ' · ' + size(s.msgIdFilters.bytes) + '</b></div>' : ''
    var cause = s && s.cause ? '<div class="cause">' + esc(s.cause) + '</div>' : ''
    var children = (node.children || []).map(function (c) { return chip(c, node) }).join('') + ghostChips(node)
    return '<div class="shard actor' + sel + bad + '" data-key="' + esc(node.key) + '" data-machine="shard" data-shard="' + esc(node.id) + '" data-state="' + esc(node.state) + '">' +
      head + nums + cause + '<div class="children">' + (children || '<span class="empty">no primary or readers yet</span>') + '</div></div>'
  }
  function renderTree() {
    var st = model.state
    if (!st || !st.tree) return
    var root = st.tree
    var byTopic = {}
    ;(root.children || []).forEach(function (shard) {
      var topic = shard.shard ? shard.shard.topic : shard.id.split('/')[0]
      ;(byTopic[topic] = byTopic[topic] || []).push(shard)
    })
    var topics = Object.keys(byTopic).sort().map(function (topic) {
      var shards = byTopic[topic].sort(function (a, b) { return (a.shard ? a.shard.shard : 0) - (b.shard ? b.shard.shard : 0) })
      return '<div class="topic"><h3>topic ' + esc(topic) + ' · ' + shards.length + ' of ' + st.shardsPerTopic + ' shards open</h3><div class="shards">' + shards.map(shardCard).join('') + '</div></div>'
    }).join('')
    var sel = model.tab === 'root' && model.selected.root === root.key ? ' selected' : ''
    $('tree').innerHTML = '<div class="root-actor actor' + sel + '" data-key="root" data-machine="root" data-state="' + esc(root.state) + '">root supervisor <span class="chip ' + tone(root.state, root.status) + '">' + esc(root.state) + '</span></div>' +
      '<div class="tree-body">' + (topics || '<p class="empty">no shard open yet: shards open at their first request</p>') + '</div>'
  }
  function renderSummary() {
    var st = model.state
    if (!st) return
    var t = st.totals
    var shards = st.tree ? (st.tree.children || []).length : 0
    $('summary').innerHTML = '<b>' + esc(st.root) + '</b> · ' + esc(st.mode) + ' mode · ' + st.shardsPerTopic + ' shards per topic · ' +
      '<b>' + shards + '</b> shard supervisors · <b>' + t.primaries + '</b> primaries · <b>' + t.readers + '</b> readers · ' + t.handles + ' native handles' +
      (st.activity ? ' · <b>' + esc(st.activity) + '</b>' : '')
  }

  // ---- statecharts ------------------------------------------------------------------------------------------------
  function renderTabs() {
    $('tabs').innerHTML = model.machines.map(function (m) {
      return '<button data-tab="' + esc(m.name) + '" class="' + (m.name === model.tab ? 'active' : '') + '" title="' + esc(m.summary) + '">' + esc(m.title) + '</button>'
    }).join('')
    var m = model.machines.filter(function (x) { return x.name === model.tab })[0]
    $('chart').innerHTML = m ? m.svg : ''
    $('chart').setAttribute('data-machine', model.tab)
    highlight()
    renderTree()
  }
  function highlight() {
    var svg = $('chart').querySelector('svg')
    if (!svg) return
    var actors = allActors().filter(function (a) { return a.node.machine === model.tab })
    var key = model.selected[model.tab]
    var chosen = actors.filter(function (a) { return a.node.key === key })[0] || actors[0]
    var current = {}
    if (chosen) chosen.node.paths.forEach(function (p) { current[p] = true })
    var counts = {}
    actors.forEach(function (a) { a.node.paths.forEach(function (p) { counts[p] = (counts[p] || 0) + 1 }) })
    svg.querySelectorAll('g.state').forEach(function (g) {
      var path = g.getAttribute('data-state')
      g.classList.toggle('current', !!current[path])
      g.classList.toggle('occupied', !!counts[path])
    })
    svg.querySelectorAll('text.count').forEach(function (t) {
      var n = counts[t.getAttribute('data-count-for')] || 0
      t.textContent = n > 0 ? '×' + n : ''
    })
    $('chart-caption').textContent = chosen ? actorName(chosen) + ': ' + chosen.node.state : 'no ' + model.tab + ' actor running'
  }
  function flash(transitions) {
    var svg = $('chart').querySelector('svg')
    if (!svg) return
    transitions.forEach(function (t) {
      if (t.machine !== model.tab) return
      t.to.forEach(function (to) {
        svg.querySelectorAll('g.transition').forEach(function (g) {
          if (g.getAttribute('data-from') === t.from && g.getAttribute('data-to') === to && g.getAttribute('data-event') === t.event) {
            g.classList.add('fired')
            clearTimeout(g._timer)
            g._timer = setTimeout(function () { g.classList.remove('fired') }, 1500)
          }
        })
      })
    })
  }

  // ---- the log ----------------------------------------------------------------------------------------------------
  function addLog(e) {
    if (model.seenLog[e.seq]) return
    model.seenLog[e.seq] = true
    if (e.actor !== 'shard' && e.type === 'failed') {
      model.ghosts[e.shard + '/' + e.actor] = { shard: e.shard, actor: e.actor, detail: e.detail || '', note: 'restarting…', at: e.at, until: Infinity }
    }
    if (e.type === 'restarted') {
      var g = model.ghosts[e.shard + '/' + e.actor]
      if (g) { g.note = e.detail || 'restarted'; g.until = Date.now() + 10000 }
    }
    if (e.type === 'failed' || e.type === 'restarted') renderTree()
    var li = document.createElement('li')
    li.className = 'log-entry type-' + e.type
    li.setAttribute('data-type', e.type)
    li.setAttribute('data-shard', e.shard)
    li.setAttribute('data-actor', e.actor)
    li.innerHTML = '<span class="at">' + clock(e.at) + '</span><span class="where">' + esc(e.label) + '</span><span class="who">' + esc(e.actor) +
      '</span><span class="type">' + esc(e.type) + '</span><span class="detail" title="' + esc(e.detail || '') + '">' + esc(e.detail || '') + '</span>'
    var list = $('log')
    list.insertBefore(li, list.firstChild)
    while (list.children.length > 400) list.removeChild(list.lastChild)
    model.log.push(e)
    $('log-count').textContent = num(model.log.length) + ' so far, newest first'
  }

  // ---- wiring -----------------------------------------------------------------------------------------------------
  function render() {
    renderSummary()
    renderTree()
    highlight()
  }
  document.addEventListener('click', function (ev) {
    var tab = ev.target.closest && ev.target.closest('[data-tab]')
    if (tab) { model.tab = tab.getAttribute('data-tab'); renderTabs() }
  })
  // An actor is selected when the button goes down, not on 'click': the tree is redrawn with every state update, and
  // a redraw between the press and the release turns the click into one on the tree itself (the pressed node is gone).
  document.addEventListener('mousedown', function (ev) {
    if (ev.button !== 0) return
    var el = ev.target.closest && ev.target.closest('.actor[data-key]')
    if (el) {
      var machine = el.getAttribute('data-machine')
      model.selected[machine] = el.getAttribute('data-key')
      model.tab = machine
      renderTabs()
      render()
    }
  })
  setInterval(function () { if (model.state) renderTree() }, 1000)

  function connect() {
    var source = new EventSource('/events')
    var status = function (s) { $('connection').setAttribute('data-status', s); $('connection').querySelector('.text').textContent = s }
    source.onopen = function () { status('live') }
    source.onerror = function () { status('lost') }
    source.addEventListener('state', function (m) { model.state = JSON.parse(m.data); render() })
    source.addEventListener('lifecycle', function (m) { addLog(JSON.parse(m.data)) })
    source.addEventListener('transitions', function (m) { flash(JSON.parse(m.data)) })
  }
  fetch('/api/machines').then(function (r) { return r.json() }).then(function (machines) {
    model.machines = machines
    renderTabs()
    connect()
  })
})()
