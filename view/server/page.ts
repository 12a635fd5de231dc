/**
 * The one HTML page: every address that is not under /-/ gets it, and the
 * script reads the address. No resource is fetched from anywhere but this
 * server (the favicon is inline), and the page says so to the browser.
 */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; img-src 'self' data:">
<title>vfio-mc</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/-/app.css">
<script type="module" src="/-/app.js"></script>
</head>
<body><div id="app"></div></body>
</html>
`;
