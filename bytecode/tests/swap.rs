//! Golden behaviour of `swap`: the target method behaves like the patch class's method.

mod support;

use repair_bytecode::transform::swap::swap;
use repair_bytecode::transform::{MethodTarget, SwapSpec};

const SHOP: &str = r#"
import java.util.*;
public class Shop {
    final Map<String, Long> prices = new HashMap<>();
    Shop() { prices.put("apple", 3L); }
    long fee(long p) { return p / 10; }
    long price(String item) { return prices.get(item).longValue(); }
    String label(String item) { return item; }
    static int total(List<String> xs) { return xs.size(); }
    public static void main(String[] a) {
        Shop s = new Shop();
        System.out.println(s.label("apple") + " " + s.price("apple") + " " + total(Arrays.asList("ab", "cde")));
        System.out.println(s.price("pear"));
    }
}
"#;

/// Fixed source, compiled as its own class with the same members.
const FIXED: &str = r#"
import java.util.*;
public class ShopFix {
    final Map<String, Long> prices = new HashMap<>();
    long fee(long p) { return p / 10; }
    long price(String item) { Long p = prices.get(item); return p == null ? -1 - fee(0) : p + fee(p); }
    String label(String item) { return "[" + item + ":" + prices.size() + "]"; }
    static int total(List<String> xs) { return xs.stream().mapToInt(String::length).sum(); }
    static int lambda(List<String> xs) { return xs.stream().mapToInt(s -> s.length() * 2).sum(); }
    long price(int unknownInTarget) { return 0; }
}
"#;

fn spec(method: &str, patch: &[u8]) -> SwapSpec {
    SwapSpec { method: MethodTarget::parse(method), patch_class: patch.to_vec() }
}

#[test]
fn swapped_methods_behave_like_the_patch() {
    let dir = support::scratch("swap");
    let classes = support::javac(&dir, &[("Shop.java", SHOP), ("ShopFix.java", FIXED)]);
    let path = classes.join("Shop.class");
    let patch = std::fs::read(classes.join("ShopFix.class")).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    for m in ["price", "label", "total"] {
        bytes = swap(&bytes, &spec(m, &patch)).unwrap_or_else(|e| panic!("{m}: {e}"));
    }
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out, err) = support::java(&[&classes], "Shop");
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "[apple:1] 3 5\n-1\n");
}

#[test]
fn swap_refuses_what_redefinition_cannot_do() {
    let dir = support::scratch("swap-refuse");
    let classes = support::javac(&dir, &[("Shop.java", SHOP), ("ShopFix.java", FIXED)]);
    let patch = std::fs::read(classes.join("ShopFix.class")).unwrap();
    let bytes = std::fs::read(classes.join("Shop.class")).unwrap();
    let lambda = FIXED.replace(
        "static int total(List<String> xs) { return xs.stream().mapToInt(String::length).sum(); }",
        "static int total(List<String> xs) { return lambda(xs); }",
    );
    let classes2 = support::javac(&support::scratch("swap-refuse-2"), &[("ShopFix.java", &lambda)]);
    let patch2 = std::fs::read(classes2.join("ShopFix.class")).unwrap();
    let err = swap(&bytes, &spec("total", &patch2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "method Shop.total(Ljava/util/List;)I, swap: the patch body uses method lambda(Ljava/util/List;)I which the target class Shop lacks: redefinition cannot add a method"
    );
    let err = swap(&bytes, &spec("missing", &patch)).unwrap_err();
    assert_eq!(err.to_string(), "class Shop: no method missing");
    let err = swap(&bytes, &spec("main", &patch)).unwrap_err();
    assert_eq!(err.to_string(), "patch class, class ShopFix: no method main([Ljava/lang/String;)V");
    assert!(swap(&bytes, &spec("price", b"junk")).unwrap_err().to_string().starts_with("patch class"));
}
