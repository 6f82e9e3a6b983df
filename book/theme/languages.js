// The language switcher: a link in the menu bar to the same page in each
// language the book is built in (scripts/i18n build puts English at the root
// and each translation in a directory named after its language).
(function () {
    "use strict";
    var languages = [["en", "English"], ["zh-CN", "中文"]];
    var here = document.documentElement.lang || "en";
    // path_to_root is "" for a page at the root: "./" is that directory.
    var root = new URL(path_to_root || "./", window.location.href).href;
    var page = window.location.href.slice(root.length).split("#")[0];
    // The English root: the translation's root is one directory below it.
    var english = here === "en" ? root : new URL("../", root).href;
    var bar = document.querySelector(".right-buttons");
    if (!bar) {
        return;
    }
    var nav = document.createElement("span");
    nav.id = "cfs-languages";
    languages.forEach(function (language) {
        var code = language[0];
        var link = document.createElement("a");
        link.textContent = language[1];
        link.lang = code;
        link.hreflang = code;
        link.href = english + (code === "en" ? "" : code + "/") + page;
        if (code === here) {
            link.setAttribute("aria-current", "true");
        }
        nav.appendChild(link);
    });
    bar.insertBefore(nav, bar.firstChild);
})();
