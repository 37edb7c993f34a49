// The collaborative editor page: CodeMirror 6 bound to the document's Yjs Text
// ("content") through a stock y-websocket WebsocketProvider, remote cursors from
// awareness (y-codemirror.next), a presence list and the connection status.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { yCollab } from 'y-codemirror.next'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { keymap } from '@codemirror/view'
import { indentWithTab } from '@codemirror/commands'

const COLORS = [
  ['#3158d4', '#3158d433'], ['#c8343c', '#c8343c33'], ['#1a8f5a', '#1a8f5a33'],
  ['#c27a00', '#c27a0033'], ['#8a3ffc', '#8a3ffc33'], ['#0f8b9c', '#0f8b9c33'],
  ['#d4357f', '#d4357f33'], ['#5a6b00', '#5a6b0033']
]
const ADJECTIVES = ['Brisk', 'Calm', 'Clever', 'Eager', 'Gentle', 'Lucky', 'Quiet', 'Swift']
const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Panda', 'Falcon', 'Koala', 'Badger', 'Fox']

function pick (list) { return list[Math.floor(Math.random() * list.length)] }

function loadUser () {
  let user = null
  try { user = JSON.parse(localStorage.getItem('collab-doc-user') || 'null') } catch (e) {}
  const params = new URLSearchParams(location.search)
  if (!user || !user.name) {
    const [color, colorLight] = pick(COLORS)
    user = { name: `${pick(ADJECTIVES)} ${pick(ANIMALS)}`, color, colorLight }
  }
  if (params.get('name')) {
    // A name given in the address picks its colour too, so two people differ.
    user.name = params.get('name').slice(0, 32)
    const hash = [...user.name].reduce((sum, c) => sum + c.charCodeAt(0), 0)
    ;[user.color, user.colorLight] = COLORS[hash % COLORS.length]
  }
  return user
}

function saveUser (user) {
  try { localStorage.setItem('collab-doc-user', JSON.stringify(user)) } catch (e) {}
}

function initials (name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map(w => w[0].toUpperCase()).join('') || '?'
}

export function mount (root) {
  const name = root.dataset.document
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/docs`
  const ydoc = new Y.Doc()
  const ytext = ydoc.getText('content')
  const provider = new WebsocketProvider(wsBase, name, ydoc, { maxBackoffTime: 2500 })
  const user = loadUser()
  saveUser(user)
  provider.awareness.setLocalStateField('user', user)

  const view = new EditorView({
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        basicSetup,
        keymap.of([indentWithTab]),
        EditorView.lineWrapping,
        yCollab(ytext, provider.awareness)
      ]
    }),
    parent: root.querySelector('.editor-host')
  })

  // connection status
  const status = root.querySelector('[data-status]')
  function showStatus (kind, text) {
    status.className = `badge ${kind}`
    status.textContent = text
    root.dataset.connection = kind === 'ok' ? 'synced' : kind === 'warn' ? 'connecting' : 'offline'
  }
  showStatus('warn', 'Connecting…')
  provider.on('status', ({ status: s }) => {
    if (s === 'connected') showStatus(provider.synced ? 'ok' : 'warn', provider.synced ? 'Live' : 'Syncing…')
    else if (s === 'connecting') showStatus('warn', 'Connecting…')
    else showStatus('bad', 'Offline — edits are kept and sent on reconnect')
  })
  provider.on('sync', (synced) => { if (synced && provider.wsconnected) showStatus('ok', 'Live') })

  // presence
  const people = root.querySelector('[data-people]')
  function renderPeople () {
    const states = [...provider.awareness.getStates().entries()]
      .filter(([, state]) => state && state.user)
      .sort(([a], [b]) => (a === ydoc.clientID ? -1 : b === ydoc.clientID ? 1 : a - b))
    people.replaceChildren(...states.map(([client, state]) => {
      const chip = document.createElement('span')
      chip.className = 'person'
      chip.title = state.user.name + (client === ydoc.clientID ? ' (you)' : '')
      chip.style.setProperty('--person', state.user.color || '#6b7385')
      chip.textContent = initials(state.user.name)
      return chip
    }))
    root.querySelector('[data-count]').textContent =
      states.length === 1 ? 'Only you' : `${states.length} editing`
  }
  provider.awareness.on('change', renderPeople)
  renderPeople()

  // your name
  const nameInput = root.querySelector('[data-name]')
  nameInput.value = user.name
  nameInput.style.setProperty('--person', user.color)
  nameInput.addEventListener('change', () => {
    user.name = nameInput.value.trim().slice(0, 32) || user.name
    nameInput.value = user.name
    saveUser(user)
    provider.awareness.setLocalStateField('user', user)
  })

  // footer: characters and words
  const stats = root.querySelector('[data-stats]')
  function renderStats () {
    const text = ytext.toString()
    const words = (text.match(/\S+/g) || []).length
    stats.textContent = `${text.length} characters · ${words} words`
  }
  ytext.observe(renderStats)
  renderStats()

  window.addEventListener('beforeunload', () => provider.destroy())
  window.collabEditor = { view, ydoc, ytext, provider, user }
  view.focus()
  return window.collabEditor
}

const root = document.querySelector('[data-collab-editor]')
if (root) mount(root)
