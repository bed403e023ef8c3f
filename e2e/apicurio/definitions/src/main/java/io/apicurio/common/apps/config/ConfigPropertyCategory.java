package io.apicurio.common.apps.config;

// The configuration categories that apicurio-registry-app 3.0.9 names in its
// @Info annotations. The 3.0.9 definitions artifact that holds this enum is
// not served, so the stand-in declares it; only the constants' names are
// read (by the generated annotation literals), so their order is free.
public enum ConfigPropertyCategory {
    CATEGORY_API,
    CATEGORY_AUTH,
    CATEGORY_CACHE,
    CATEGORY_CCOMPAT,
    CATEGORY_DOWNLOAD,
    CATEGORY_GITOPS,
    CATEGORY_HEALTH,
    CATEGORY_IMPORT,
    CATEGORY_LIMITS,
    CATEGORY_REDIRECTS,
    CATEGORY_REST,
    CATEGORY_SEMVER,
    CATEGORY_STORAGE,
    CATEGORY_SYSTEM,
    CATEGORY_UI,
}
