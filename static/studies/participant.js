// Participant pages: browser check, listening forms (play tracking, unlock, keyboard), answer log.
// No framework; every page works by POST-redirect-GET, this only adds the listening rules.
(function () {
  "use strict";

  // -- browser check --------------------------------------------------------------------------
  function browserCheck(form) {
    var AC = window.AudioContext || window.webkitAudioContext;
    var status = document.getElementById("check-status");
    // Without cookies the form's POST is refused (no CSRF cookie) and no step could be kept:
    // say so here, and keep Continue disabled.
    if (!navigator.cookieEnabled) {
      status.textContent = status.dataset.noCookies;
      status.className = "error";
      status.setAttribute("role", "alert");
      return;
    }
    var set = function (name, value) { form.elements[name].value = value; };
    var mobile = (navigator.userAgentData && navigator.userAgentData.mobile) ||
      /iPhone|iPod|Android.*Mobile|Windows Phone/.test(navigator.userAgent);
    set("touch", navigator.maxTouchPoints > 0 ? "1" : "0");
    set("screen", screen.width + "x" + screen.height);
    set("ua_mobile", mobile ? "1" : "0");
    var ok = !!AC && typeof Audio !== "undefined";
    if (ok) {
      try {
        var ctx = new AC();
        set("sample_rate", String(Math.round(ctx.sampleRate)));
        if (ctx.close) ctx.close();
      } catch (e) { ok = false; }
    }
    set("web_audio", ok ? "1" : "0");
    status.textContent = ok ? status.dataset.ok : status.dataset.fail;
    form.querySelector("button[type=submit]").disabled = false;
    // On the study link this form makes the participant: a double click must not make two.
    var sent = false;
    form.addEventListener("submit", function (e) {
      if (sent) { e.preventDefault(); return; }
      sent = true;
    });
  }

  // -- listening forms ------------------------------------------------------------------------
  function audioSampleRate() {
    try {
      var AC = window.AudioContext || window.webkitAudioContext;
      var ctx = new AC();
      var rate = ctx.sampleRate;
      if (ctx.close) ctx.close();
      return Math.round(rate);
    } catch (e) { return null; }
  }

  function listen(form) {
    var required = (form.dataset.required || "").split(",").filter(Boolean);
    var audios = {}, plays = {}, bins = {}, ended = {};
    var unlockedAt = null, blurs = 0, events = [], sent = false;
    // Clips in trouble: "error" (the last load or play failed) or "stalled" (stopped part-way).
    var broken = {};
    var watchdogs = {};  // clips asked to play: checks that their playback gets on
    // A request that hangs never fires "error", neither before the sound starts nor mid-file
    // (the element says "waiting" and waits for ever): after this long without progress, say so.
    var stallMs = function () { return Number(form.dataset.stallMs) || 8000; };
    var focusFell = null;  // a play-once button that disabled itself while it had the focus
    var t0 = performance.now();
    // Time the page spent hidden (another tab, minimised), from the page load; at the unlock it
    // is split off, so the logged hidden_ms is the part response_ms includes.
    var hiddenTotal = 0, hiddenSince = document.hidden ? t0 : null, hiddenAtUnlock = 0;
    var hiddenSoFar = function () {
      return hiddenTotal + (hiddenSince === null ? 0 : performance.now() - hiddenSince);
    };
    var log = function (what) {
      if (events.length < 200) events.push([Math.round(performance.now() - t0), what]);
    };

    // A trial's plays and heard bins are kept across reloads of its page in this tab
    // (sessionStorage: not across tabs or browsers), keyed by the slot's id, which the form and
    // the sound URLs carry already: nothing about the trial. docs/site.md "Logged per answer".
    var keptKey = form.hasAttribute("data-answer") && form.elements.slot
      ? "csn-listened:" + form.elements.slot.value : null;
    var kept = null;
    try { kept = keptKey && JSON.parse(window.sessionStorage.getItem(keptKey)); } catch (e) { kept = null; }
    kept = kept || { plays: {}, bins: {} };
    var keep = function () {
      if (!keptKey) return;
      var b = {};
      Object.keys(bins).forEach(function (k) { if (bins[k]) b[k] = Array.prototype.join.call(bins[k], ""); });
      try {
        window.sessionStorage.setItem(keptKey, JSON.stringify({ plays: plays, bins: b }));
      } catch (e) { /* storage full or refused: counted for this page load only */ }
    };

    form.querySelectorAll("audio[data-key]").forEach(function (a) {
      var k = a.dataset.key;
      audios[k] = a; plays[k] = Number((kept.plays || {})[k]) || 0; ended[k] = false; bins[k] = null;
      var last = 0;
      // The clip's 100 ms bins, made once its duration is known. Metadata of a cached or fast
      // clip can arrive before this deferred script runs, so "loadedmetadata" alone would miss it.
      // Bins kept from an earlier load of this page are restored (the slot's sound is the same,
      // drawn from a keyed seed: the same length).
      var makeBins = function () {
        if (!bins[k] && isFinite(a.duration) && a.duration > 0) {
          bins[k] = new Uint8Array(Math.max(1, Math.ceil(a.duration * 10)));
          var before = (kept.bins || {})[k];
          if (typeof before === "string" && before.length === bins[k].length) {
            for (var i = 0; i < before.length; i++) bins[k][i] = before.charAt(i) === "1" ? 1 : 0;
          }
        }
      };
      makeBins();
      a.addEventListener("loadedmetadata", makeBins);
      a.addEventListener("durationchange", makeBins);
      // A seek (a replay starts at 0) is not listening: the bins count from where it landed. No
      // time limit between two updates: a busy page or a background tab sends them seconds apart.
      a.addEventListener("seeking", function () { last = a.currentTime; });
      a.addEventListener("timeupdate", function () {
        makeBins();
        var now = a.currentTime;
        if (bins[k] && now >= last) {
          for (var i = Math.floor(last * 10); i < Math.min(bins[k].length, Math.ceil(now * 10)); i++) bins[k][i] = 1;
        }
        last = now;
        keep();
      });
      a.addEventListener("ended", function () {
        makeBins();
        if (bins[k]) for (var i = Math.floor(last * 10); i < bins[k].length; i++) bins[k][i] = 1;
        last = 0;
        unwatch(k);
        ended[k] = true;
        keep();
        log("ended " + k);
        setState(k, "done");
        var btn = form.querySelector('[data-play="' + k + '"]');
        if (btn) btn.classList.remove("playing");
        if (a.hasAttribute("data-once") && btn) btn.disabled = true;
        maybeUnlock();
      });
      a.addEventListener("error", function () { failed(k); });
      a.addEventListener("playing", function () { recovered(k); });
      if (a.error) failed(k);  // it failed before this script ran
    });

    function failed(k) {
      unwatch(k);
      broken[k] = "error";
      setState(k, "error");
      log("error " + k);
      showTrouble();  // say why the page stays locked
    }

    function recovered(k) {
      if (!broken[k]) return;
      delete broken[k];
      showTrouble();
    }

    // One message per kind of trouble, shown while a clip has it.
    function showTrouble() {
      var kinds = Object.keys(broken).map(function (k) { return broken[k]; });
      [["[data-load-error]", "error"], ["[data-stalled]", "stalled"]].forEach(function (m) {
        var alert = form.querySelector(m[0]);
        if (alert) alert.hidden = kinds.indexOf(m[1]) < 0;
      });
    }

    // While clip k should be playing, its position must move: one that has not moved for
    // stallMs is stopped. The position is read, not taken from "timeupdate" events, which a
    // busy page or a background tab sends seconds apart (and late timers only check later).
    function watch(k, btn) {
      var a = audios[k], from = a.currentTime, seen = from, since = performance.now();
      unwatch(k);
      watchdogs[k] = setInterval(function () {
        if (a.currentTime !== seen) { seen = a.currentTime; since = performance.now(); return; }
        if (performance.now() - since < stallMs()) return;
        unwatch(k);
        log("stalled " + k);
        a.pause();  // a play() not yet started then rejects with an AbortError, not reported
        if (seen > from) stalled(k, btn); else notPlayed(k, btn);
      }, Math.min(250, stallMs() / 4));
    }

    function unwatch(k) { clearInterval(watchdogs[k]); delete watchdogs[k]; }

    // It stopped part-way: the play counts and what was heard stays in its bins, but it did not
    // end. Pressing play again asks for the sound again (see play); a play-once sound stays
    // played (its page says to reload it for a new one).
    function stalled(k, btn) {
      broken[k] = "stalled";
      setState(k, ended[k] ? "done" : "stalled");
      if (btn) btn.classList.remove("playing");
      showTrouble();
    }

    function setState(k, state) {
      var el = form.querySelector('[data-state="' + k + '"]');
      if (!el) return;
      el.dataset.value = state;
      el.textContent = "";
      var mark = { done: "✓", playing: "♪", error: "!", stalled: "↻" }[state];
      if (!mark) return;
      var shown = document.createElement("span");
      shown.setAttribute("aria-hidden", "true");  // screen readers get the words, or nothing
      shown.textContent = mark;
      el.appendChild(shown);
      var said = form.dataset["said" + state.charAt(0).toUpperCase() + state.slice(1)];
      if (said && state !== "playing") {  // nothing is spoken over the sound
        var words = document.createElement("span");
        words.className = "sr-only";
        words.textContent = said;
        el.appendChild(words);
      }
    }

    function heard(k) {
      if (!bins[k]) return 0;
      var n = 0;
      for (var i = 0; i < bins[k].length; i++) n += bins[k][i];
      return Math.round((1000 * n) / bins[k].length) / 1000;
    }

    function play(k) {
      var a = audios[k];
      if (!a || sent) return;
      var btn = form.querySelector('[data-play="' + k + '"]');
      if (btn && btn.disabled) return;
      Object.keys(audios).forEach(function (o) {
        if (o !== k && !audios[o].paused) {
          audios[o].pause();
          unwatch(o);
          setState(o, ended[o] ? "done" : "");
          var ob = form.querySelector('[data-play="' + o + '"]');
          if (ob) ob.classList.remove("playing");
        }
      });
      // A failed load leaves the element failed for good (play() only rejects), a hung or
      // stalled one waits for ever: ask again, the network may be back.
      if (a.error || a.networkState === HTMLMediaElement.NETWORK_NO_SOURCE || broken[k]) a.load();
      a.currentTime = 0;
      plays[k] += 1;
      keep();
      log("play " + k);
      setState(k, "playing");
      if (btn) btn.classList.add("playing");
      if (a.hasAttribute("data-once") && btn) {
        if (document.activeElement === btn) focusFell = btn;
        btn.disabled = true;
      }
      watch(k, btn);
      var p = a.play();
      if (p && p.catch) p.catch(function (e) {
        log("play-failed " + k + " " + e.name);
        if (e.name === "AbortError") return;  // paused by another play: nothing went wrong
        notPlayed(k, btn);
      });
    }

    function notPlayed(k, btn) {
      plays[k] -= 1;  // it never played: it may be played again, and is not counted
      keep();
      if (btn) { btn.classList.remove("playing"); btn.disabled = false; }
      if (focusFell === btn) focusFell = null;
      failed(k);
    }

    function maybeUnlock() {
      if (unlockedAt !== null) return;
      if (!required.every(function (k) { return ended[k]; })) return;
      unlockedAt = performance.now();
      hiddenAtUnlock = hiddenSoFar();
      log("unlocked");
      form.querySelectorAll("[data-unlock]").forEach(function (b) { b.disabled = false; });
      // A focused play-once button disables itself when pressed, and the keyboard focus falls
      // to the page: give it to the first answer so keyboard and screen-reader users land on
      // them. Only then: focus on the page after a shortcut key must stay there, or the next
      // Space (the play shortcut) would press that answer.
      var at = document.activeElement;
      if (focusFell && (!at || at === document.body || at === focusFell)) {
        var first = form.querySelector("[data-unlock]");
        if (first) first.focus();
      }
      var hint = form.querySelector("[data-locked-hint]");
      if (hint) hint.textContent = hint.dataset.unlocked || "";  // a live region: read out
    }

    function choose(value) {
      if (sent || unlockedAt === null) return;
      sent = true;  // one submission per page, whatever the clicks
      var rt = Math.round(performance.now() - unlockedAt);
      form.elements.choice.value = value;
      if (form.elements.rt_ms) form.elements.rt_ms.value = String(rt);
      if (form.elements.log) {
        var h = {};
        Object.keys(audios).forEach(function (k) { h[k] = heard(k); });
        form.elements.log.value = JSON.stringify({
          response_ms: rt, plays: plays, heard: h, blur_events: blurs,
          audio_sample_rate: audioSampleRate(), events: events,
          hidden_ms: Math.round(hiddenSoFar() - hiddenAtUnlock),
          hidden_before_unlock_ms: Math.round(hiddenAtUnlock),
          viewport: window.innerWidth + "x" + window.innerHeight,
        });
      }
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      Object.keys(audios).forEach(function (k) { audios[k].pause(); unwatch(k); });
      form.submit();
    }

    form.querySelectorAll("[data-play]").forEach(function (b) {
      b.addEventListener("click", function () { play(b.dataset.play); });
    });
    form.querySelectorAll("[data-choice]").forEach(function (b) {
      b.addEventListener("click", function () { choose(b.dataset.choice); });
    });
    window.addEventListener("blur", function () { blurs += 1; log("blur"); });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { hiddenSince = performance.now(); log("hidden"); }
      else if (hiddenSince !== null) { hiddenTotal += performance.now() - hiddenSince; hiddenSince = null; log("visible"); }
    });
    window.addEventListener("focus", function () { log("focus"); });
    form.addEventListener("submit", function (e) {
      // Only forms without choices (calibration) submit natively, and only once unlocked.
      if (form.hasAttribute("data-answer") || unlockedAt === null || sent) { e.preventDefault(); return; }
      sent = true;
    });

    document.addEventListener("keydown", function (e) {
      if (e.repeat) {  // a held key acts once; a held Enter would press a focused button again
        if (e.key === "Enter" && e.target.closest && e.target.closest("button")) e.preventDefault();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      // Space and Enter on a focused button or link press that button or follow that link.
      if ((e.key === " " || e.key === "Enter") && e.target.closest && e.target.closest("button, a")) return;
      var tag = (e.target && e.target.tagName) || "";
      if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
      var key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
      var target = Array.prototype.find.call(form.querySelectorAll("[data-shortcut]"), function (el) {
        return el.dataset.shortcut.split("|").indexOf(key) >= 0;
      });
      if (!target || target.disabled) return;
      e.preventDefault();
      target.click();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var check = document.querySelector("form[data-browser-check]");
    if (check) browserCheck(check);
    document.querySelectorAll("form[data-listen]").forEach(listen);
    // Leaving the study asks first (without the script the button leaves at once).
    document.querySelectorAll("[data-confirm]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        if (!window.confirm(b.dataset.confirm)) e.preventDefault();
      });
    });
    // "Your answer was not saved" and "already answered in another window" are said once: a
    // reload of this page must not say them again.
    if (/[?&](early|answered)=/.test(location.search) && window.history && history.replaceState) {
      history.replaceState(null, "", location.pathname);
    }
    // Play buttons and shortcuts work from here on (tests wait for this, not for the markup).
    document.documentElement.setAttribute("data-listening", "");
  });
})();
