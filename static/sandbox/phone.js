// The sandbox phone: one simulated WeChat user at a time, talking to the official account through
// the sandbox's control API (DESIGN.md, "The sandbox"). Plain DOM, no libraries; data is only ever
// written with textContent, never as HTML. The chat comes from the sandbox (GET …/chat), which keeps
// it across reloads and restarts; links in it show as short words, and open in the phone's web view.
(function () {
  "use strict";

  var root = document.getElementById("sandbox");
  var base = root.dataset.base; // "/sandbox/"
  var me = null; // the current simulated user, as GET /api/users/{openid} returns it
  var lastSeq = 0; // the newest chat entry shown
  var smsTimer = null;
  var sheetTimer = null;
  var smsSeen = ""; // the newest SMS time seen in the web view's inbox (ISO, compares as text)

  // Our own pages, by path: what a link to them says in the chat.
  var LINK_LABELS = [
    [/^\/r\/home\/?$/, "打开我的档案"],
    [/^\/r\/bind\/?$/, "打开绑定档案"],
    [/^\/r\/help\/?$/, "打开使用帮助"],
    [/^\/r\/archives\/[^/]+\/?$/, "打开档案"],
    [/^\/r\/archives\//, "打开档案详情"],
    [/^\/r\/records\//, "打开记录"],
  ];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else if (k.indexOf("on") === 0) node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function api(method, path, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(base + "api/" + path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(data.message || "请求失败（HTTP " + r.status + "）");
        return data;
      });
    });
  }

  function toast(text) {
    var t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 3500);
  }

  function clock(iso) {
    var d = iso ? new Date(iso) : new Date();
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // ------------------------------------------------------------------ tabs

  function showTab(name) {
    ["chat", "scan", "sms", "users"].forEach(function (t) { $("pane-" + t).hidden = t !== name; });
    document.querySelectorAll(".tabs__item").forEach(function (b) {
      b.classList.toggle("tabs__item--on", b.dataset.tab === name);
    });
    clearInterval(smsTimer);
    if (name === "sms") { loadSms(); smsTimer = setInterval(loadSms, 3000); }
  }

  // ------------------------------------------------------------------ users

  function loadUsers(select) {
    return api("GET", "users").then(function (data) {
      var sel = $("user-select");
      sel.length = 1;
      data.users.forEach(function (u) {
        sel.appendChild(el("option", { value: u.openid, text: u.nickname + "（" + u.openid.slice(0, 8) + "…）" }));
      });
      if (select) sel.value = select;
      return data.users;
    });
  }

  function useUser(openid) {
    return api("GET", "users/" + encodeURIComponent(openid)).then(function (user) {
      me = user;
      lastSeq = 0;
      localStorage.setItem("sandbox.openid", user.openid);
      // Who is "inside WeChat": the authorize page lets snsapi_base through silently for them.
      document.cookie = "sandbox_openid=" + encodeURIComponent(user.openid) + "; path=" + base + "; SameSite=Lax";
      $("current-user").textContent = user.nickname;
      $("chat-log").textContent = "";
      renderFollow();
      showTab("chat");
      return Promise.all([loadMenu(), pollChat()]);
    });
  }

  function refreshUser() {
    return api("GET", "users/" + encodeURIComponent(me.openid)).then(function (user) {
      me = user;
      renderFollow();
      return loadMenu();
    });
  }

  function renderFollow() {
    $("follow-state").textContent = me.subscribed ? "已关注" : "未关注";
    $("follow").hidden = me.subscribed;
    $("unfollow").hidden = !me.subscribed;
  }

  // ------------------------------------------------------------------ chat

  function addEntry(side, test, nodes) {
    var item = el("li", { className: "chat__item chat__item--" + side, "data-test": test }, nodes);
    $("chat-log").appendChild(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function note(text) { return addEntry("note", "chat-note", [el("span", { text: text })]); }

  // What the user just did, shown at once; the sandbox's own entry replaces it when it arrives.
  function pending(kind, text) {
    var item = kind === "sent"
      ? addEntry("me", "sent", [el("div", { className: "bubble", text: text })])
      : note(text);
    item.classList.add("chat__item--pending");
    item.dataset.pending = kind + ":" + text;
    return item;
  }

  function settle(kind, text) {
    var mine = $("chat-log").querySelectorAll(".chat__item--pending");
    for (var i = 0; i < mine.length; i++) {
      if (kind === null || mine[i].dataset.pending === kind + ":" + text) { mine[i].remove(); if (kind !== null) return; }
    }
  }

  // A text reply may carry <a href="…">…</a> links, which WeChat shows as links; WeChat also makes
  // plain http(s) addresses tappable. The rest is text.
  function richText(text) {
    var box = el("div", { className: "bubble" });
    var re = /<a\s[^>]*?href\s*=\s*(["'])(.*?)\1[^>]*>([\s\S]*?)<\/a>/gi;
    var at = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      plainText(box, text.slice(at, m.index));
      box.appendChild(link(m[3], m[2], "reply-link"));
      at = re.lastIndex;
    }
    plainText(box, text.slice(at));
    return box;
  }

  // A bare address shows as short words (as WeChat users see a link's title), not the URL.
  function plainText(box, text) {
    var re = /https?:\/\/[^\s<>"'，。）]+/g;
    var at = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      box.appendChild(document.createTextNode(text.slice(at, m.index)));
      box.appendChild(link(linkLabel(m[0]), m[0], "reply-link", "link link--chip"));
      at = re.lastIndex;
    }
    box.appendChild(document.createTextNode(text.slice(at)));
  }

  function linkLabel(url) {
    var target;
    try { target = new URL(url, location.href); } catch (e) { return "打开链接"; }
    for (var i = 0; i < LINK_LABELS.length; i++) {
      if (target.origin === location.origin && LINK_LABELS[i][0].test(target.pathname)) return LINK_LABELS[i][1];
    }
    return "打开网页（" + target.host + "）";
  }

  function link(label, url, test, className) {
    return el("a", {
      href: url, text: label, title: url, "data-test": test, "data-url": url, className: className || "link",
      onclick: function (e) { e.preventDefault(); openWeb(url, label); },
    });
  }

  function articles(list) {
    return list.map(function (a) {
      return el("div", { className: "card", "data-test": "article" }, [
        el("p", { className: "card__title", text: a.title || "" }),
        el("p", { className: "card__desc", text: a.description || "" }),
        a.url ? link("阅读全文", a.url, "article-link") : el("span"),
      ]);
    });
  }

  function showReply(res) {
    if (res.reply === null || res.reply === undefined) return;
    if (!res.msgtype) addEntry("them", "reply", [richText(res.reply)]);
    else if (res.msgtype === "news") addEntry("them", "reply", articles(res.reply.articles || []));
    else addEntry("them", "reply", [el("div", { className: "bubble", text: "[" + res.msgtype + " 消息]" })]);
  }

  function showPush(m) {
    if (m.kind === "template") {
      var rows = Object.keys(m.data || {}).map(function (k) {
        var v = m.data[k] && typeof m.data[k] === "object" ? m.data[k].value : m.data[k];
        return el("p", { className: "card__row" }, [el("span", { text: k }), el("b", { text: String(v) })]);
      });
      var card = el("div", { className: "card" }, [
        el("p", { className: "card__title", text: "模板消息 · " + clock(m.at) }),
        el("p", { className: "card__meta", text: m.template_id }),
      ].concat(rows));
      if (m.url) card.appendChild(link("详情", m.url, "push-link"));
      if (m.miniprogram) card.appendChild(el("p", { className: "card__meta", text: "小程序：" + m.miniprogram.pagepath }));
      addEntry("them", "push", [card]);
    } else if (m.msgtype === "text") {
      addEntry("them", "push", [richText(m.text)]);
    } else if (m.msgtype === "news") {
      addEntry("them", "push", articles((m.data && m.data.articles) || []));
    } else {
      addEntry("them", "push", [el("div", { className: "bubble", text: "[客服消息 " + m.msgtype + "]" })]);
    }
  }

  function showEntry(e) {
    if (e.seq <= lastSeq) return; // two polls crossed: shown already
    lastSeq = e.seq;
    if (e.kind === "sent") {
      settle("sent", e.text);
      addEntry("me", "sent", [el("div", { className: "bubble", text: e.text })]);
    } else if (e.kind === "note") {
      settle("note", e.text);
      note(e.text);
    } else if (e.kind === "reply") {
      showReply(e);
    } else if (e.kind === "push" && e.message) {
      showPush(e.message);
    }
  }

  // The chat as the sandbox keeps it: everything after the newest entry shown.
  function pollChat() {
    if (!me) return Promise.resolve();
    var openid = me.openid;
    return api("GET", "users/" + encodeURIComponent(openid) + "/chat?after=" + lastSeq).then(function (data) {
      if (!me || me.openid !== openid) return;
      data.entries.forEach(showEntry);
    }).catch(function () { /* the next poll will tell */ });
  }

  // What the user does: the event goes to /wechat through the sandbox; the sandbox keeps the line
  // and the reply in the chat, which the poll then shows.
  function act(action, body, shown) {
    if (!me) { toast("请先选择模拟用户"); showTab("users"); return Promise.resolve(); }
    if (shown) shown();
    var failed = null;
    return api("POST", "users/" + encodeURIComponent(me.openid) + "/" + action, body)
      .catch(function (e) { failed = e; })
      .then(pollChat)
      .then(function () {
        settle(null);
        if (failed) note(failed.message);
      })
      .then(refreshUser);
  }

  // ------------------------------------------------------------------ menu

  function loadMenu() {
    return api("GET", "users/" + encodeURIComponent(me.openid) + "/menu").then(function (data) {
      renderMenu(me.subscribed && data.menu ? data.menu.button : []);
    });
  }

  function renderMenu(buttons) {
    var bar = $("menu");
    bar.textContent = "";
    bar.hidden = buttons.length === 0;
    buttons.forEach(function (b) {
      if (!b.sub_button || b.sub_button.length === 0) {
        bar.appendChild(menuItem(b, "menu__button"));
        return;
      }
      var list = el("div", { className: "menu__list", hidden: "" }, b.sub_button.map(function (s) {
        return menuItem(s, "menu__sub");
      }));
      var group = el("button", {
        className: "menu__button menu__button--group", text: b.name, "data-test": "menu-group", "data-name": b.name,
        onclick: function () {
          var open = list.hidden;
          bar.querySelectorAll(".menu__list").forEach(function (l) { l.hidden = true; });
          list.hidden = !open;
        },
      });
      bar.appendChild(el("div", { className: "menu__cell" }, [group, list]));
    });
  }

  function menuItem(b, className) {
    return el("button", {
      className: className, text: b.name, "data-test": "menu-item", "data-name": b.name,
      "data-type": b.type || "", "data-key": b.key || "", "data-url": b.url || "",
      onclick: function () {
        $("menu").querySelectorAll(".menu__list").forEach(function (l) { l.hidden = true; });
        tap(b);
      },
    });
  }

  function tap(b) {
    if (b.type === "click") {
      act("click", { key: b.key }, function () { pending("note", "点击菜单：" + b.name); });
    } else if (b.type === "view" || (b.type === "miniprogram" && b.url)) {
      openWeb(b.url, b.name);
      api("POST", "users/" + encodeURIComponent(me.openid) + "/view", { url: b.url }).catch(function () {});
    } else {
      toast("沙箱不模拟此类菜单：" + b.type);
    }
  }

  // ------------------------------------------------------------------ web view

  function openWeb(url, title) {
    var target;
    try { target = new URL(url, location.href); } catch (e) { toast("链接无效"); return; }
    if (target.protocol !== "http:" && target.protocol !== "https:") { toast("链接无效"); return; }
    $("webview-title").textContent = title || "";
    $("webview-frame").src = target.href;
    $("webview").hidden = false;
    checkSms();
    clearInterval(sheetTimer);
    sheetTimer = setInterval(checkSms, 3000);
  }

  function closeWeb() {
    $("webview").hidden = true;
    showSheet(false);
    clearInterval(sheetTimer);
    $("webview-frame").src = "about:blank";
  }

  // The page's own title, as WeChat's web view shows it (our pages are on this origin).
  function pageTitle() {
    try {
      var title = $("webview-frame").contentDocument.title;
      if (title) $("webview-title").textContent = title;
    } catch (e) { /* another origin: keep the link's words */ }
  }

  // ------------------------------------------------------------------ SMS

  function fetchSms() {
    var phone = $("sms-phone").value.trim();
    return api("GET", "sms" + (phone ? "?phone=" + encodeURIComponent(phone) : ""));
  }

  function renderSms(ol, list, test) {
    ol.textContent = "";
    if (list.length === 0) ol.appendChild(el("li", { className: "sms__empty", text: "暂无短信" }));
    list.forEach(function (s) {
      var code = /验证码\D{0,3}(\d{4,8})/.exec(s.text);
      ol.appendChild(el("li", { className: "sms__item", "data-test": test }, [
        el("p", { className: "sms__meta", text: s.phone + " · " + clock(s.at) }),
        code ? el("p", { className: "sms__code", "data-test": "sms-code", text: code[1] }) : el("span"),
        el("p", { className: "sms__text", text: s.text }),
      ]));
    });
  }

  function loadSms() {
    return fetchSms().then(function (list) { renderSms($("sms-list"), list, "sms-item"); })
      .catch(function (e) { toast(e.message); });
  }

  // The inbox over an open page: read the code without leaving it. The badge counts what is new.
  function checkSms() {
    return fetchSms().then(function (list) {
      var open = !$("sms-sheet").hidden;
      if (open) {
        renderSms($("sheet-sms-list"), list.slice(0, 10), "sheet-sms-item");
        if (list.length) smsSeen = list[0].at;
      }
      var fresh = open ? 0 : list.filter(function (s) { return s.at > smsSeen; }).length;
      $("webview-sms-badge").textContent = fresh ? String(fresh) : "";
      $("webview-sms-badge").hidden = !fresh;
    }).catch(function () { /* the next check will tell */ });
  }

  function showSheet(open) {
    $("sms-sheet").hidden = !open;
    $("webview-sms").setAttribute("aria-expanded", open ? "true" : "false");
    if (open) checkSms();
  }

  // ------------------------------------------------------------------ wiring

  document.querySelectorAll(".tabs__item").forEach(function (b) {
    b.addEventListener("click", function () { showTab(b.dataset.tab); });
  });
  $("user-select").addEventListener("change", function (e) {
    if (e.target.value) useUser(e.target.value).catch(function (err) { toast(err.message); });
  });
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var nickname = $("user-nickname").value.trim();
    if (!nickname) { toast("请填写昵称"); return; }
    api("POST", "users", { nickname: nickname, unionid: $("user-unionid").checked || undefined })
      .then(function (u) { $("user-nickname").value = ""; return loadUsers(u.openid).then(function () { return useUser(u.openid); }); })
      .catch(function (err) { toast(err.message); });
  });
  $("follow").addEventListener("click", function () { act("follow", {}, function () { pending("note", "你关注了公众号"); }); });
  $("unfollow").addEventListener("click", function () { act("unfollow", {}, function () { pending("note", "你取消了关注"); }); });
  $("chat-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("chat-input").value.trim();
    if (!text) return;
    $("chat-input").value = "";
    act("text", { content: text }, function () { pending("sent", text); });
  });
  $("scan-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var scene = $("scan-scene").value.trim();
    if (!scene) { toast("请填写二维码场景值"); return; }
    showTab("chat");
    act("scan", { scene: scene }, function () { pending("note", "扫描二维码：" + scene); });
  });
  $("sms-phone").addEventListener("input", loadSms);
  $("webview-close").addEventListener("click", closeWeb);
  $("webview-frame").addEventListener("load", pageTitle);
  $("webview-sms").addEventListener("click", function () { showSheet($("sms-sheet").hidden); });
  $("sms-sheet-close").addEventListener("click", function () { showSheet(false); });
  setInterval(pollChat, 2000);

  // SMS sent before this page was opened are not new.
  fetchSms().then(function (list) { if (list.length && list[0].at > smsSeen) smsSeen = list[0].at; }).catch(function () {});

  var remembered = localStorage.getItem("sandbox.openid");
  loadUsers(remembered).then(function (users) {
    var known = users.some(function (u) { return u.openid === remembered; });
    if (known) return useUser(remembered);
    showTab("users");
  }).catch(function (e) { toast(e.message); });
})();
